/**
 * The worker's end of one faasbox-init: launches it (through the engine's zygote, or by
 * spawning it), feeds it the config, and turns the sync socket's messages into promises
 * (ready, exit). See native/protocol.h.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import net from 'node:net';
import type { Readable, Writable, Duplex } from 'node:stream';
import { EngineError } from './errors.js';
import { readLines } from './lines.js';
import { decodeWaitStatus, EXIT_BAIL, parseSyncLine, ZYGOTE_MAX_CONFIG, ZYGOTE_MAX_EXTRA_FDS, type SyncMessage } from './native/protocol.js';
import { sendFds, socketpair } from './sys/fdpass.js';
import type { ZygoteLauncher } from './zygote.js';
import type { Seed } from './seeds.js';
import { writeIdMaps } from './userns/namespace.js';
import type { IdRange } from './userns/ranges.js';

export type StdioSpec = 'inherit' | 'pipe' | 'ignore' | number;

export interface InitExit {
  exitCode: number | null;
  signal: number | null;
  /** Set when a stage of faasbox-init failed (before or at exec). */
  error?: string;
  /** How the container's init (pid 1) ended, when the user process's status is unknown. */
  initKilled?: boolean;
}

export interface SpawnOptions {
  /** The faasbox-init binary (the engine's initBin). */
  bin: string;
  config: Buffer;
  stdio: [StdioSpec, StdioSpec, StdioSpec];
  /** Host fds handed to the user process as 3, 4, ... */
  extraFds: (number | 'pipe')[];
  /** Launch through this zygote when the request fits it; else spawn faasbox-init. */
  zygote?: ZygoteLauncher | undefined;
  /** A parked seed to hand the container to (native/protocol.h); its cgroup is already the container's. */
  seed?: Seed | undefined;
  /** userns mode: the maps to write once init's pid is known; init waits for them ("mapped"). */
  userns?: IdRange | undefined;
}

interface Ends {
  sync: Duplex;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  extra: (Duplex | null)[];
}

export class InitProcess {
  /** The spawned monitor; undefined when the zygote launched it. */
  readonly child: ChildProcess | undefined;
  /** Host pid of the container's init (pid 1 inside). */
  pid = 0;
  private readonly ends: Ends;
  private readonly sync: Duplex;
  private errors: string[] = [];
  private userStatus: number | undefined;
  private initStatus: number | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private readySeen = false;
  private onExitReport: () => void = () => {};
  private readonly userns: IdRange | undefined;
  readonly exited: Promise<InitExit>;

  constructor(opts: SpawnOptions) {
    this.userns = opts.userns;
    const seeded = opts.seed && launchBySeed(opts.seed, opts);
    if (seeded) {
      this.child = undefined;
      this.ends = seeded;
    } else if (opts.zygote?.accepts(opts.config, opts.extraFds.length)) {
      this.child = undefined;
      this.ends = launchByZygote(opts.zygote, opts);
    } else {
      this.child = spawnMonitor(opts);
      const st = this.child.stdio;
      this.ends = {
        sync: st[4] as Duplex,
        stdin: this.child.stdin,
        stdout: this.child.stdout,
        stderr: this.child.stderr,
        extra: opts.extraFds.map((_, i) => (st[5 + i] as Duplex | null) ?? null),
      };
    }
    this.sync = this.ends.sync;
    if (seeded) {
      opts.seed!.sync.ref();
      opts.seed!.adopt((m) => this.onMessage(m));
    } else {
      readLines(this.sync, (line) => this.onMessage(parseSyncLine(line)));
    }
    this.sync.on('error', () => {});
    this.exited = new Promise<InitExit>((resolve) => {
      // Settled by the first of: the init's "exit" report (the user process ended; the
      // namespace dies with init right after), or the monitor's end (init itself died).
      // A spawned monitor's end is its exit; a zygote's monitor is seen only through the
      // sync socket ("init-exit", then EOF once the monitor and init have both gone).
      // Piped stdout/stderr must also have ended, so that readers have all the output.
      const streams = [this.ends.stdout, this.ends.stderr].filter((s): s is Readable => s !== null);
      const drained = Promise.all(streams.map((s) => new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : s.once('close', () => r())))));
      let syncEnded = false;
      let monitorCode: number | null | undefined;
      const finish = () => {
        if (this.userStatus !== undefined || (syncEnded && monitorCode !== undefined)) {
          const out = this.outcome(monitorCode ?? null);
          void drained.then(() => resolve(out));
        }
      };
      this.onExitReport = finish;
      this.sync.on('close', () => {
        syncEnded = true;
        // A monitor that reported nothing but an error ended through bail().
        if (!this.child) monitorCode = this.errors.length ? EXIT_BAIL : null;
        finish();
      });
      this.child?.on('exit', (code) => {
        monitorCode = code;
        finish();
      });
    });
    // A container that dies before "ready" rejects the ready waiter.
    void this.exited.then((ex) => {
      this.readyWaiters?.reject(
        new EngineError('CREATE_FAILED', `container init failed before it was ready: ${ex.error ?? describe(ex)}`, { ...ex }),
      );
      this.readyWaiters = undefined;
    });
  }

  get stdin(): Writable | null {
    return this.ends.stdin;
  }
  get stdout(): Readable | null {
    return this.ends.stdout;
  }
  get stderr(): Readable | null {
    return this.ends.stderr;
  }
  /** The worker's ends of the 'pipe' extra fds, in order. */
  extraStream(i: number): Duplex {
    return this.ends.extra[i] as Duplex;
  }

  /**
   * Resolves once init is parked ("ready") and its host pid is known ("pid"), in either
   * order: the monitor writes the pid when clone returns, while the child is already
   * running, and on cgroup v2 (born in its cgroup, no cgroup.procs write) the child's
   * "ready" can come first: the engine's lifecycle test saw pid 0 in 7 of 35 runs in a
   * 2-vCPU cgroup v2 VM before this waited for both.
   */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.readyWaiters = { resolve, reject };
    });
  }

  start(): void {
    this.sync.write('start\n');
  }

  /** Signals the init; it forwards everything but SIGKILL/SIGSTOP to the user process. */
  signal(sig: NodeJS.Signals | number): void {
    if (this.pid > 0) {
      try {
        process.kill(this.pid, sig);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  }

  private onMessage(msg: SyncMessage): void {
    switch (msg.kind) {
      case 'pid':
        this.pid = msg.pid;
        if (this.userns) this.mapIds();
        this.settleReady();
        break;
      case 'ready':
        this.readySeen = true;
        this.settleReady();
        break;
      case 'exit':
        this.userStatus = msg.status;
        this.onExitReport();
        break;
      case 'init-exit':
        this.initStatus = msg.status;
        break;
      case 'error':
        this.errors.push(msg.message);
        break;
    }
  }

  private mapIds(): void {
    try {
      writeIdMaps(this.pid, this.userns!);
      this.sync.write('mapped\n');
    } catch (err) {
      this.errors.push(`writing the id maps of pid ${this.pid}: ${(err as Error).message}`);
      this.signal('SIGKILL');
    }
  }

  private get isReady(): boolean {
    return this.readySeen && this.pid > 0;
  }

  private settleReady(): void {
    if (!this.isReady) return;
    this.readyWaiters?.resolve();
    this.readyWaiters = undefined;
  }

  private outcome(monitorCode: number | null): InitExit {
    const error = this.errors.length ? this.errors.join('; ') : undefined;
    if (this.userStatus !== undefined) {
      return { ...decodeWaitStatus(this.userStatus), ...(error ? { error } : {}) };
    }
    if (this.initStatus !== undefined) {
      // The user process's status never arrived: init itself was killed (e.g. SIGKILL
      // of the whole cgroup) or failed before forking it.
      const st = decodeWaitStatus(this.initStatus);
      return { ...st, initKilled: st.signal !== null, ...(error ? { error } : {}) };
    }
    return { exitCode: monitorCode, signal: null, error: error ?? `faasbox-init exited with ${monitorCode} before reporting` };
  }
}

function checkBinary(bin: string): string {
  if (!existsSync(bin)) {
    throw new EngineError('INIT_BINARY_MISSING', `faasbox-init not found at ${bin}; run \`npm install\` (it builds the C stage with make)`);
  }
  return bin;
}

/** The spawn path: one fork of the worker per container (FAASBOX_ZYGOTE=0, or a request too big for the zygote). */
function spawnMonitor(opts: SpawnOptions): ChildProcess {
  const bin = checkBinary(opts.bin);
  const stdio: StdioOptions = [...opts.stdio, 'pipe', 'pipe', ...opts.extraFds];
  // An empty environment: nothing of the worker's reaches the container.
  const child = spawn(bin, [], { stdio, env: {}, argv0: 'faasbox-init' });
  const configStream = child.stdio[3] as Writable;
  configStream.on('error', () => {}); // reported through the sync socket or the exit
  configStream.end(opts.config);
  return child;
}

/**
 * The seed path: the container's stdio and extra fds (no sync socket: the seed's becomes
 * the container's) and its config, in one message on the seed's control socket.
 * undefined if the seed is gone: the caller launches through the zygote instead, and
 * that init joins the (renamed) cgroup itself.
 */
function launchBySeed(seed: Seed, opts: SpawnOptions): (Ends & { sync: net.Socket }) | undefined {
  if (seed.dead || seed.control < 0 || opts.config.length > ZYGOTE_MAX_CONFIG || opts.extraFds.length > ZYGOTE_MAX_EXTRA_FDS) {
    seed.closeControl();
    seed.sync.destroy();
    return undefined;
  }
  try {
    const ends = handOver(opts, false, (fds) => sendFds(seed.control, opts.config, fds));
    return { ...ends, sync: seed.sync };
  } catch {
    seed.sync.destroy();
    return undefined;
  } finally {
    // One container per seed: the seed has its message, or is dead.
    seed.closeControl();
  }
}

/**
 * The zygote path: the same fds the spawn path would set up (socketpairs for 'pipe',
 * /dev/null for 'ignore'), handed over in one message; the worker keeps its ends.
 */
function launchByZygote(zygote: ZygoteLauncher, opts: SpawnOptions): Ends {
  const ends = handOver(opts, true, (fds) => zygote.launch(opts.config, fds));
  return { ...ends, sync: ends.sync! };
}

/** Makes the fds a launch hands over (stdio, the sync socket if withSync, extras), sends them, keeps the worker's ends. */
function handOver(opts: SpawnOptions, withSync: boolean, send: (fds: number[]) => void): Omit<Ends, 'sync'> & { sync: Duplex | null } {
  const theirs: number[] = []; // fds opened only to be handed over: closed here in any case
  const mine: number[] = []; // the worker's ends: closed here only on failure
  const pair = (): [number, number] => {
    const [a, b] = socketpair();
    mine.push(a);
    theirs.push(b);
    return [a, b];
  };
  try {
    const myStdio: (number | undefined)[] = [];
    const fds = opts.stdio.map((spec, i) => {
      if (spec === 'inherit') return i;
      if (typeof spec === 'number') return spec;
      if (spec === 'ignore') {
        const fd = openSync('/dev/null', 'r+');
        theirs.push(fd);
        return fd;
      }
      const [a, b] = pair();
      myStdio[i] = a;
      return b;
    });
    let mySync: number | undefined;
    if (withSync) {
      const [a, b] = pair();
      mySync = a;
      fds.push(b);
    }
    const myExtra = opts.extraFds.map((spec) => {
      if (spec !== 'pipe') {
        fds.push(spec);
        return undefined;
      }
      const [a, b] = pair();
      fds.push(b);
      return a;
    });
    send(fds);
    const wrap = (fd: number | undefined, readable: boolean) => (fd === undefined ? null : new net.Socket({ fd, readable, writable: true }));
    return {
      sync: wrap(mySync, true),
      stdin: wrap(myStdio[0], false),
      stdout: wrap(myStdio[1], true),
      stderr: wrap(myStdio[2], true),
      extra: myExtra.map((fd) => wrap(fd, true)),
    };
  } catch (err) {
    for (const fd of mine) closeSync(fd);
    throw err;
  } finally {
    for (const fd of theirs) closeSync(fd);
  }
}

function describe(ex: InitExit): string {
  return ex.signal !== null ? `killed by signal ${ex.signal}` : `exit code ${ex.exitCode}`;
}
