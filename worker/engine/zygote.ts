/**
 * The zygote: one `faasbox-init --zygote` per engine that forks the container monitors,
 * so that the worker (a large multi-threaded Node process, which child_process.spawn
 * forks and waits on for every container) spawns only once. Framing: native/protocol.h.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync } from 'node:fs';
import { EngineError } from './errors.js';
import { initBinaryPath, ZYGOTE_FD_CONTROL, ZYGOTE_FDS_FIXED, ZYGOTE_MAX_CONFIG, ZYGOTE_MAX_EXTRA_FDS } from './native/protocol.js';
import { fdPassingSupported, sendFds, socketpair, SOCK_SEQPACKET } from './sys/fdpass.js';

/** Whether this platform can hand fds to a zygote (the engine's zygote option asks for one). */
export function zygoteSupported(): boolean {
  return fdPassingSupported();
}

/** One running zygote process and the worker's end of its control socket. */
class ZygoteProcess {
  readonly child: ChildProcess;
  private control: number;
  readonly exited: Promise<void>;
  alive = true;

  constructor(bin: string) {
    const [mine, theirs] = socketpair(SOCK_SEQPACKET);
    const stdio: (number | 'ignore' | 'inherit')[] = ['ignore', 'ignore', 'inherit'];
    stdio[ZYGOTE_FD_CONTROL] = theirs;
    try {
      this.child = spawn(bin, ['--zygote'], { stdio, env: {}, argv0: 'faasbox-init' });
    } catch (err) {
      closeSync(mine);
      throw err;
    } finally {
      closeSync(theirs);
    }
    this.control = mine;
    // Neither the process nor its socket keeps the worker alive; the zygote dies with it.
    this.child.unref();
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => {
        this.alive = false;
        this.closeControl();
        resolve();
      });
      this.child.once('error', () => {
        this.alive = false;
        this.closeControl();
        resolve();
      });
    });
  }

  send(config: Buffer, fds: readonly number[]): void {
    if (this.control < 0) throw new EngineError('CREATE_FAILED', 'the zygote is closed');
    sendFds(this.control, config, fds);
  }

  closeControl(): void {
    if (this.control >= 0) {
      closeSync(this.control);
      this.control = -1;
    }
  }
}

/**
 * The engine's launcher: starts the zygote on first use and again if it died. close()
 * stops it: the zygote takes no more requests and exits once the monitors it forked have
 * ended (containers still running keep it, and themselves, alive until then).
 */
export class ZygoteLauncher {
  private proc: ZygoteProcess | undefined;
  private closed = false;

  /** bin: the faasbox-init binary (the engine's initBin). */
  constructor(private readonly bin: string = initBinaryPath()) {}

  /** Whether a request of this size and fd count fits the protocol's limits. */
  accepts(config: Buffer, extraFds: number): boolean {
    return !this.closed && config.length <= ZYGOTE_MAX_CONFIG && extraFds <= ZYGOTE_MAX_EXTRA_FDS;
  }

  /** pid of the running zygote, if any (for tests). */
  get pid(): number | undefined {
    return this.proc?.alive ? this.proc.child.pid : undefined;
  }

  /**
   * Hands one container's config and fds (stdin, stdout, stderr, sync, extra...) to the
   * zygote. The caller keeps its fds and closes them afterwards; what the monitor makes
   * of the request arrives on the sync socket.
   */
  launch(config: Buffer, fds: readonly number[]): void {
    if (this.closed) throw new EngineError('CREATE_FAILED', 'the engine was closed');
    if (fds.length < ZYGOTE_FDS_FIXED) throw new TypeError(`a launch needs at least ${ZYGOTE_FDS_FIXED} fds`);
    for (let attempt = 0; ; attempt++) {
      const proc = this.running();
      try {
        proc.send(config, fds);
        return;
      } catch (err) {
        // A zygote that died (EPIPE, ECONNRESET) is replaced once; anything else is ours.
        const code = (err as { errnoName?: string }).errnoName;
        if (attempt > 0 || (code !== 'EPIPE' && code !== 'ECONNRESET' && code !== 'ECONNREFUSED')) {
          throw new EngineError('CREATE_FAILED', `could not hand the container to the zygote: ${(err as Error).message}`);
        }
        proc.alive = false;
        proc.closeControl();
      }
    }
  }

  private running(): ZygoteProcess {
    if (this.proc?.alive) return this.proc;
    const bin = this.bin;
    if (!existsSync(bin)) {
      throw new EngineError('INIT_BINARY_MISSING', `faasbox-init not found at ${bin}; run \`npm install\` (it builds the C stage with make)`);
    }
    this.proc = new ZygoteProcess(bin);
    return this.proc;
  }

  /** Stops taking requests; resolves when the zygote has exited (after its containers). */
  async close(): Promise<void> {
    this.closed = true;
    const proc = this.proc;
    if (!proc) return;
    proc.closeControl();
    proc.child.ref(); // else an otherwise idle worker would exit before hearing of it
    await proc.exited;
  }
}
