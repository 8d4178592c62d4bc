/**
 * The worker's end of one faasbox-init: spawns it, feeds it the config, and turns the
 * sync socket's messages into promises (ready, exit). See native/protocol.h.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable, Writable, Duplex } from 'node:stream';
import { EngineError } from './errors.js';
import { decodeWaitStatus, initBinaryPath, parseSyncLine, type SyncMessage } from './native/protocol.js';

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
  config: Buffer;
  stdio: [StdioSpec, StdioSpec, StdioSpec];
  /** Host fds handed to the user process as 3, 4, ... */
  extraFds: (number | 'pipe')[];
}

export class InitProcess {
  readonly child: ChildProcess;
  /** Host pid of the container's init (pid 1 inside). */
  pid = 0;
  private readonly sync: Duplex;
  private buffered = '';
  private errors: string[] = [];
  private userStatus: number | undefined;
  private initStatus: number | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private readySeen = false;
  private onExitReport: () => void = () => {};
  readonly exited: Promise<InitExit>;

  constructor(opts: SpawnOptions) {
    const bin = initBinaryPath();
    if (!existsSync(bin)) {
      throw new EngineError('INIT_BINARY_MISSING', `faasbox-init not found at ${bin}; run \`npm install\` (it builds the C stage with make)`);
    }
    const stdio: StdioOptions = [...opts.stdio, 'pipe', 'pipe', ...opts.extraFds];
    // An empty environment: nothing of the worker's reaches the container.
    this.child = spawn(bin, [], { stdio, env: {}, argv0: 'faasbox-init' });
    const configStream = this.child.stdio[3] as Writable;
    this.sync = this.child.stdio[4] as Duplex;
    configStream.on('error', () => {}); // reported through the sync socket or the exit
    configStream.end(opts.config);
    this.sync.setEncoding('utf8');
    this.sync.on('data', (chunk: string) => this.onData(chunk));
    this.sync.on('error', () => {});
    this.exited = new Promise<InitExit>((resolve) => {
      // Settled by the first of: the init's "exit" report (the user process ended; the
      // namespace dies with init right after), or the monitor's end (init itself died).
      // Piped stdout/stderr must also have ended, so that readers have all the output.
      const streams = [this.child.stdout, this.child.stderr].filter((s): s is Readable => s !== null);
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
        finish();
      });
      this.child.on('exit', (code) => {
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
    return this.child.stdin;
  }
  get stdout(): Readable | null {
    return this.child.stdout;
  }
  get stderr(): Readable | null {
    return this.child.stderr;
  }
  /** The worker's ends of the 'pipe' extra fds, in order. */
  extraStream(i: number): Duplex {
    return this.child.stdio[5 + i] as Duplex;
  }

  ready(): Promise<void> {
    if (this.readySeen) return Promise.resolve();
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

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      this.onMessage(parseSyncLine(line));
    }
  }

  private onMessage(msg: SyncMessage): void {
    switch (msg.kind) {
      case 'pid':
        this.pid = msg.pid;
        break;
      case 'ready':
        this.readySeen = true;
        this.readyWaiters?.resolve();
        this.readyWaiters = undefined;
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

function describe(ex: InitExit): string {
  return ex.signal !== null ? `killed by signal ${ex.signal}` : `exit code ${ex.exitCode}`;
}
