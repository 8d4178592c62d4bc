/**
 * A runtime instance: one container running a language runtime shim (images/), spoken
 * to over two inherited fds (3: requests, 4: replies; newline-delimited JSON; see
 * images/PROTOCOL.md). Never the network, so a container without one still serves.
 *
 * Lifecycle: boot (container created, runtime started, "ready") -> load (a function's
 * code made visible at /var/task through the container's code slot, module imported;
 * beginLoad, with its first invocation written right behind it) -> invoke, one at a
 * time, many in a row -> destroy.
 */
import type { NetworkSpec } from '../engine/spec.js';
import type { Duplex, Readable } from 'node:stream';
import type { Engine } from '../engine/engine.js';
import type { Container, ExitResult } from '../engine/container.js';
import type { NetUsage } from '../engine/network/network.js';
import type { CgroupStats } from '../engine/cgroups/index.js';
import { readLines, type LineSplitter } from '../engine/lines.js';
import { CODE_DIR, endMarker, WARM_UP_ENV, type ResultMessage, type RuntimeMessage } from '../../images/protocol.js';
import { parseReply } from './replies.js';
import { ResultTooLargeError } from '../../common/errors.js';
import { checkHttpAnswer, MalformedHttpAnswer } from './http-answer.js';
import { containerLimits, type ContainerLimits, type FunctionLimits } from './specconv.js';

const LOG_LIMIT = 64 * 1024;
/**
 * The longest reply line a runtime may write (bytes of the JSON message: a result's value,
 * or an HTTP body in base64). 6 MiB, Lambda's limit on a synchronous response. A reply
 * past it is cut off where it crosses the limit: the worker never holds more of it.
 */
export const DEFAULT_MAX_RESULT_BYTES = 6 * 1024 * 1024;

export interface RuntimeImage {
  name: string;
  layers: string[];
  args: string[];
  env?: Record<string, string>;
}

export interface BootOptions {
  image: RuntimeImage;
  /** From specconv.ts (stemLimits, or a function's functionLimits). */
  limits: FunctionLimits;
  /** A user namespace of its own (engine/userns/); absent: the engine's default. */
  userns?: boolean;
  /** Bridge mode (engine/network/); absent: none. */
  network?: NetworkSpec;
  /**
   * false when the load follows the boot at once (a cold start): the runtime then skips
   * its warm-up, which pays off only for a runtime that waits (a stem cell).
   */
  warmUp?: boolean;
}

export interface LoadRequest {
  codeDir: string;
  entry: string;
  handler: string;
  env: Record<string, string>;
}

export interface InvokeRequest {
  id: string;
  event: unknown;
  context: Record<string, unknown>;
  http?: unknown;
  timeoutMs: number;
  /**
   * The function's output as it arrives, before the invocation ends; the outcome's
   * stdout/stderr then hold only what was not handed out here.
   */
  onOutput?: (stream: OutputStream, chunk: string) => void;
  /**
   * A load still in flight (beginLoad): the invoke request is written behind it at once,
   * saving a round trip to the runtime, and the timeout starts once the load is done.
   */
  afterLoad?: Promise<void>;
  /**
   * The event is the JSON of http.body (an invoke request's, InvocationJob.event): the body
   * is then sent once, raw, behind the request line (PROTOCOL.md, bodyBytes), and the
   * runtime parses the event from it, rather than getting the event and a base64 copy.
   */
  eventIsBody?: boolean;
  /** Longest result accepted (DEFAULT_MAX_RESULT_BYTES when unset); past it, RESULT_TOO_LARGE and the container is killed. */
  maxResultBytes?: number;
}

export type OutputStream = 'stdout' | 'stderr';

/** LOAD_FAILED: the function's module did not load (its error, or its load timed out); the instance is dead. */
export type InvokeFailure = 'FUNCTION_ERROR' | 'LOAD_FAILED' | 'TIMEOUT' | 'OOM_KILLED' | 'RUNTIME_CRASHED' | 'RESULT_TOO_LARGE';

export interface InvokeOutcome {
  ok: boolean;
  value?: unknown;
  http?: { status: number; headers: Record<string, string>; body: string };
  error?: { code: InvokeFailure; message: string; name?: string; stack?: string };
  stdout: string;
  stderr: string;
  truncated: boolean;
  execMs: number;
  /** Time spent waiting for an afterLoad before the invocation could start. */
  loadMs: number;
  cpuMs: number;
  memoryPeakBytes: number;
  /** Block I/O of the invocation (cgroup io.stat / blkio); absent where it could not be told apart from the container's. */
  ioReadBytes?: number;
  ioWriteBytes?: number;
  /** Bytes through eth0 during the invocation (bridge mode: its veth's counters); absent under none. */
  netRxBytes?: number;
  netTxBytes?: number;
}

type Reply = RuntimeMessage;

export class InstanceError extends Error {
  constructor(
    readonly code: 'RUNTIME_CRASHED' | 'LOAD_FAILED' | 'BOOT_FAILED' | 'OOM_KILLED' | 'TIMEOUT' | 'RESULT_TOO_LARGE',
    message: string,
    readonly stack_?: string,
  ) {
    super(message);
    this.name = 'InstanceError';
  }
}

/** Length of the longest end of text that is a proper start of marker. */
export function markerPrefixAtEnd(text: string, marker: string): number {
  // Compared in place: this runs on every chunk of a streaming function's output.
  for (let k = Math.min(marker.length - 1, text.length); k > 0; k--) {
    let i = 0;
    while (i < k && text.charCodeAt(text.length - k + i) === marker.charCodeAt(i)) i++;
    if (i === k) return k;
  }
  return 0;
}

/** Collects a stream's output for the current invocation and finds the end marker in it. */
class LogCollector {
  private buf = '';
  /** What came before the latest marker: the finished invocation's output. */
  private done = '';
  truncated = false;
  private waiter: { marker: string; resolve: () => void; onChunk: ((chunk: string) => void) | undefined } | undefined;

  /** Resolves once the stream has ended: every byte the container's processes wrote has arrived. */
  readonly ended: Promise<void>;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.push(chunk));
    this.ended = new Promise((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
  }

  private push(chunk: string): void {
    this.buf += chunk;
    const w = this.waiter;
    if (w) {
      const at = this.buf.indexOf(w.marker);
      if (at >= 0) {
        this.waiter = undefined;
        this.done = this.buf.slice(0, at);
        this.buf = this.buf.slice(at + w.marker.length);
        w.resolve();
        return;
      }
      if (w.onChunk) {
        // Hand out all but a tail that could be the start of the marker.
        const keep = markerPrefixAtEnd(this.buf, w.marker);
        if (this.buf.length > keep) {
          const out = this.buf.slice(0, this.buf.length - keep);
          this.buf = this.buf.slice(this.buf.length - keep);
          w.onChunk(out);
        }
        return;
      }
    }
    // Bound memory while waiting: keep the head and enough tail to find the marker.
    if (this.buf.length > LOG_LIMIT * 2) {
      this.truncated = true;
      this.buf = this.buf.slice(0, LOG_LIMIT) + this.buf.slice(-256);
    }
  }

  /**
   * Resolves when the marker for this invocation has arrived; take() then returns what
   * came before it and was not handed to onChunk.
   */
  until(marker: string, onChunk?: (chunk: string) => void): Promise<void> {
    return new Promise((resolve) => {
      this.waiter = { marker, resolve, onChunk };
      this.push('');
    });
  }

  take(): string {
    const out = this.done.length > LOG_LIMIT ? this.done.slice(0, LOG_LIMIT) : this.done;
    if (this.done.length > LOG_LIMIT) this.truncated = true;
    this.done = '';
    return out;
  }

  /** Whatever arrived without a marker (the runtime died mid-invocation). */
  drain(): string {
    this.waiter = undefined;
    const out = this.buf.slice(0, LOG_LIMIT);
    if (this.buf.length > LOG_LIMIT) this.truncated = true;
    this.buf = '';
    return out;
  }
}

/** The invoke request line, and the raw body to send behind it (eventIsBody). */
function invokeMessage(req: InvokeRequest): [Record<string, unknown> & { type: 'invoke' }, Buffer?] {
  const http = req.http as Record<string, unknown> | undefined;
  if (req.eventIsBody && http && typeof http.body === 'string') {
    const { body, ...head } = http;
    const raw = Buffer.from(body as string, 'base64');
    return [{ type: 'invoke', id: req.id, context: req.context, http: head, bodyBytes: raw.length }, raw];
  }
  return [{ type: 'invoke', id: req.id, event: req.event, context: req.context, http: req.http }];
}

export class RuntimeInstance {
  readonly bootedAt = Date.now();
  private readonly requests: Duplex;
  private readonly replies: Duplex;
  private readonly stdout: LogCollector;
  private readonly stderr: LogCollector;
  /** Replies expected, in request order: the runtime answers strictly one request after another. */
  private readonly pending: { invoke: boolean; accepts: (r: Reply) => boolean; resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private readonly replyLines: LineSplitter;
  private exitInfo: ExitResult | undefined;
  readonly exited: Promise<ExitResult>;
  /** The function version loaded into it, if any. */
  loaded: string | undefined;
  /** The limits in force: the boot's, then a specialisation's (setLimits). */
  limits: FunctionLimits;

  private constructor(
    readonly container: Container,
    readonly options: BootOptions,
  ) {
    this.limits = options.limits;
    this.requests = container.extraStream(0);
    this.replies = container.extraStream(1);
    this.requests.on('error', () => {});
    this.replyLines = readLines(this.replies, (line) => this.onReply(line), { maxLineBytes: DEFAULT_MAX_RESULT_BYTES, onOverflow: (bytes) => this.onReplyOverflow(bytes) });
    this.replies.on('error', () => {});
    this.stdout = new LogCollector(container.stdout!);
    this.stderr = new LogCollector(container.stderr!);
    this.exited = container.wait().then((ex) => {
      this.exitInfo = ex;
      for (const p of this.pending.splice(0)) p.reject(this.crashError(ex));
      return ex;
    });
  }

  get id(): string {
    return this.container.id;
  }
  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** Creates the container with an empty code slot, starts the runtime and waits for "ready". */
  static async boot(engine: Engine, opts: BootOptions): Promise<RuntimeInstance> {
    const { diskBytes, io, ...limits } = containerLimits(opts.limits);
    const c = await engine.create(
      {
        rootfs: { layers: opts.image.layers, diskBytes },
        process: { args: opts.image.args, env: { ...(opts.image.env ?? {}), ...(opts.warmUp === false ? { [WARM_UP_ENV]: '0' } : {}) }, cwd: '/tmp' },
        limits,
        ...(io ? { io } : {}),
        slots: [{ name: 'code', destination: CODE_DIR }],
        ...(opts.userns !== undefined ? { userns: opts.userns } : {}),
        ...(opts.network ? { network: opts.network } : {}),
      },
      { stdio: ['ignore', 'pipe', 'pipe'], extraFds: ['pipe', 'pipe'] },
    );
    const inst = new RuntimeInstance(c, opts);
    const ready = inst.expect(false, (r) => r.type === 'ready');
    c.start();
    try {
      await ready;
    } catch (err) {
      await inst.destroy();
      throw new InstanceError('BOOT_FAILED', `runtime ${opts.image.name} did not become ready: ${(err as Error).message}`);
    }
    return inst;
  }

  /** Writes `part` (specconv's limitsChange) to the container; `to` is in force once every part is. */
  setLimits(part: Partial<ContainerLimits>, to: FunctionLimits): void {
    this.container.updateLimits(part);
    this.limits = { ...this.limits, ...pick(to, part) };
    if (part.io !== undefined) {
      // io {} lifted the limits: none in force now.
      if (to.io) this.limits.io = to.io;
      else delete this.limits.io;
    }
  }

  /**
   * Makes codeDir visible at /var/task and sends the load request. The promise settles
   * when the runtime has loaded the module: rejected with LOAD_FAILED (the module's own
   * error), TIMEOUT (not loaded within timeoutMs: the container is killed, so a module
   * that never finishes its top level cannot hold a slot forever), or a crash.
   */
  beginLoad(fnKey: string, hostCodeDir: string, req: Omit<LoadRequest, 'codeDir'>, timeoutMs?: number): Promise<void> {
    this.container.fillSlot('code', hostCodeDir);
    const reply = this.request({ type: 'load', codeDir: CODE_DIR, ...req });
    const loaded = reply.then((r) => {
      if (r.type === 'load-error') {
        throw new InstanceError('LOAD_FAILED', `loading ${req.entry} failed: ${r.error.message}`, r.error.stack);
      }
      this.loaded = fnKey;
    });
    if (timeoutMs === undefined) return loaded;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Its failure, if any, surfaces where the invocation awaits the same kill.
        this.kill().catch(() => {});
        reject(new InstanceError('TIMEOUT', `the function's module did not finish loading within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    return Promise.race([loaded, timeout]).finally(() => clearTimeout(timer));
  }

  /** Runs one invocation under the function's timeout; on timeout the whole cgroup is killed. */
  async invoke(req: InvokeRequest): Promise<InvokeOutcome> {
    this.container.resetPeak();
    this.replyLines.maxLineBytes = req.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
    const before = { ...this.container.usage(), ...this.container.ioUsage() };
    const netBefore = this.netUsage();
    const marker = endMarker(req.id);
    const onOutput = req.onOutput;
    const outDone = this.stdout.until(marker, onOutput && ((chunk) => onOutput('stdout', chunk)));
    const errDone = this.stderr.until(marker, onOutput && ((chunk) => onOutput('stderr', chunk)));
    const replied = this.request(...invokeMessage(req));
    // Settled either way below; a load that failed leaves it to be rejected by the kill.
    replied.catch(() => {});
    const loadStart = performance.now();
    if (req.afterLoad) {
      try {
        await req.afterLoad;
      } catch (err) {
        return this.failedLoad(err as Error, performance.now() - loadStart);
      }
    }
    const loadMs = performance.now() - loadStart;
    const t = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new InstanceError('TIMEOUT', `the function did not finish within ${req.timeoutMs} ms`)), req.timeoutMs);
    });
    try {
      // request() resolves an invoke only with its own result (see its accepts).
      const reply = (await Promise.race([replied, timeout])) as ResultMessage;
      // The markers follow the function's own output on both streams.
      await Promise.race([Promise.all([outDone, errDone]), timeout]);
      const execMs = performance.now() - t;
      const usage = { ...this.usageSince(before), ...this.netSince(netBefore) };
      const logs = { stdout: this.stdout.take(), stderr: this.stderr.take(), truncated: this.stdout.truncated || this.stderr.truncated };
      if (reply.ok && 'http' in reply) {
        const http = checkHttpAnswer(reply.http);
        if (http instanceof MalformedHttpAnswer) return { ok: false, error: { code: 'FUNCTION_ERROR', message: http.message, name: http.name }, ...logs, execMs, loadMs, ...usage };
        return { ok: true, http, ...logs, execMs, loadMs, ...usage };
      }
      if (reply.ok) return { ok: true, value: reply.value, ...logs, execMs, loadMs, ...usage };
      const e = reply.error;
      return { ok: false, error: { code: 'FUNCTION_ERROR', message: e.message, name: e.name, ...(e.stack ? { stack: e.stack } : {}) }, ...logs, execMs, loadMs, ...usage };
    } catch (err) {
      const execMs = performance.now() - t;
      let code: InvokeFailure = 'RUNTIME_CRASHED';
      if (err instanceof InstanceError && (err.code === 'TIMEOUT' || err.code === 'OOM_KILLED' || err.code === 'RESULT_TOO_LARGE')) code = err.code;
      await this.kill();
      const ex = await this.exited;
      if ((code === 'RUNTIME_CRASHED' || code === 'OOM_KILLED') && ex.oomKilled) code = 'OOM_KILLED';
      const message =
        code === 'TIMEOUT' ? (err as Error).message : code === 'OOM_KILLED' ? `the function exceeded its memory limit of ${this.limits.memoryMb} MB` : (err as Error).message;
      return {
        ok: false,
        error: { code, message },
        stdout: this.stdout.drain(),
        stderr: this.stderr.drain(),
        truncated: this.stdout.truncated || this.stderr.truncated,
        execMs,
        loadMs,
        cpuMs: ex.usage.cpuUsageUsec / 1000,
        memoryPeakBytes: ex.usage.memoryPeakBytes,
        ioReadBytes: ex.usage.ioReadBytes - before.ioReadBytes,
        ioWriteBytes: ex.usage.ioWriteBytes - before.ioWriteBytes,
        ...this.netSince(netBefore),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The outcome of an invocation whose function never loaded; the instance is killed, being of no further use. */
  private async failedLoad(err: Error, loadMs: number): Promise<InvokeOutcome> {
    await this.kill();
    const ex = await this.exited;
    // The load error came on fd 4; what the module printed before it comes on other pipes,
    // possibly later. With every process dead, those pipes end once drained.
    await Promise.race([Promise.all([this.stdout.ended, this.stderr.ended]), new Promise((r) => setTimeout(r, 200))]);
    let error: NonNullable<InvokeOutcome['error']>;
    if (err instanceof InstanceError && err.code === 'LOAD_FAILED') error = { code: 'LOAD_FAILED', message: err.message, ...(err.stack_ ? { stack: err.stack_ } : {}) };
    else if (err instanceof InstanceError && err.code === 'TIMEOUT') error = { code: 'TIMEOUT', message: err.message };
    else if (ex.oomKilled) error = { code: 'OOM_KILLED', message: `the function exceeded its memory limit of ${this.limits.memoryMb} MB while loading` };
    else error = { code: 'RUNTIME_CRASHED', message: err.message };
    return {
      ok: false,
      error,
      // What the module printed while loading (a console.error before a throw, say) is the
      // caller's to see. The runtime may have answered the invocation queued behind the
      // load (NotLoadedError) before the kill: then its end marker came, and the output
      // before it sits in take(), the rest in drain().
      stdout: this.stdout.take() + this.stdout.drain(),
      stderr: this.stderr.take() + this.stderr.drain(),
      truncated: this.stdout.truncated || this.stderr.truncated,
      execMs: 0,
      loadMs,
      cpuMs: ex.usage.cpuUsageUsec / 1000,
      memoryPeakBytes: ex.usage.memoryPeakBytes,
    };
  }

  /** The eth0 counters, or undefined: none mode, or the veth already gone with a dead container's namespace. */
  private netUsage(): NetUsage | undefined {
    try {
      return this.container.netUsage();
    } catch {
      return undefined;
    }
  }

  private netSince(before: NetUsage | undefined): { netRxBytes?: number; netTxBytes?: number } {
    const now = before && this.netUsage();
    if (!before || !now) return {};
    return { netRxBytes: now.rxBytes - before.rxBytes, netTxBytes: now.txBytes - before.txBytes };
  }

  private usageSince(before: Pick<CgroupStats, 'cpuUsageUsec' | 'ioReadBytes' | 'ioWriteBytes'>): { cpuMs: number; memoryPeakBytes: number; ioReadBytes: number; ioWriteBytes: number } {
    const now = this.container.usage();
    const io = this.container.ioUsage();
    return {
      cpuMs: (now.cpuUsageUsec - before.cpuUsageUsec) / 1000,
      memoryPeakBytes: now.memoryPeakBytes,
      ioReadBytes: io.ioReadBytes - before.ioReadBytes,
      ioWriteBytes: io.ioWriteBytes - before.ioWriteBytes,
    };
  }

  private freezeTimer: NodeJS.Timeout | undefined;

  /**
   * Idle from now on: the container is frozen after graceMs unless wake() comes first, so
   * that whatever its function left running (a busy child, timers) stops burning CPU
   * while no invocation is in flight. A freeze that fails (a task that would not stop)
   * leaves it running, as before, and is told to onFailure.
   */
  freezeAfter(graceMs: number, onFailure?: (err: Error) => void): void {
    clearTimeout(this.freezeTimer);
    this.freezeTimer = setTimeout(() => {
      this.freezeTimer = undefined;
      if (this.alive && this.container.state === 'running') this.container.freeze().catch((err: Error) => onFailure?.(err));
    }, graceMs);
    this.freezeTimer.unref();
  }

  /**
   * Busy again: cancels a pending freeze and thaws a frozen container (a cgroup write and
   * the state file: 0.18 ms at p50 on this v1 host, 0.08 ms of it the write). The ms
   * spent thawing, or undefined when there was nothing to thaw.
   */
  wake(): number | undefined {
    clearTimeout(this.freezeTimer);
    this.freezeTimer = undefined;
    if (this.container.state !== 'frozen') return undefined;
    const t = performance.now();
    this.container.thaw();
    return performance.now() - t;
  }

  /**
   * A frozen container whose runtime was SIGKILLed from outside would die only once
   * thawed, by the next invocation (cgroup v1): thawed now, its kill lands and the exit
   * is seen as it would be for a running one. True when it was thawed for that.
   */
  /** A bridge stem cell takes a function's egress and bandwidth (engine Container.setNetwork). */
  setNetwork(spec: NetworkSpec): Promise<void> | undefined {
    return this.container.setNetwork(spec);
  }

  thawIfKilled(): boolean {
    if (this.container.state !== 'frozen' || !this.container.killPending()) return false;
    this.container.thaw();
    return true;
  }

  /** Kills the container's processes; concurrent calls (a load timeout and the invocation failing on it) share one kill. */
  async kill(): Promise<void> {
    clearTimeout(this.freezeTimer);
    this.freezeTimer = undefined;
    if (!this.alive) return;
    // A kill that failed is tried afresh by the next call.
    this.killing ??= this.container.kill('SIGKILL').catch((err: unknown) => {
      this.killing = undefined;
      throw err;
    });
    await this.killing;
  }
  private killing: Promise<void> | undefined;

  async destroy(): Promise<void> {
    await this.kill();
    await this.exited;
    await this.container.delete();
  }

  /** Writes one request line, and the raw body behind it when there is one (bodyBytes). */
  private request(msg: Record<string, unknown> & { type: 'load' | 'invoke' }, body?: Buffer): Promise<Reply> {
    if (!this.alive) return Promise.reject(this.crashError(this.exitInfo!));
    const p = this.expect(msg.type === 'invoke', msg.type === 'load' ? (r) => r.type === 'loaded' || r.type === 'load-error' : (r) => r.type === 'result' && r.id === msg.id);
    this.requests.write(`${JSON.stringify(msg)}\n`);
    if (body && body.length > 0) this.requests.write(body);
    return p;
  }

  private expect(invoke: boolean, accepts: (r: Reply) => boolean): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.pending.push({ invoke, accepts, resolve, reject });
    });
  }

  /**
   * A reply line crossed the result limit: the reader has stopped reading it (readLines
   * destroyed the stream), every request waiting is failed now, not once the runtime has
   * finished writing, and the container is killed, so it never returns to the pool.
   */
  private onReplyOverflow(bytes: number): void {
    const limit = this.replyLines.maxLineBytes;
    const tooLarge = new InstanceError('RESULT_TOO_LARGE', new ResultTooLargeError(limit).message);
    const broken = new InstanceError('RUNTIME_CRASHED', `the runtime wrote a reply line of more than ${limit} bytes (${bytes} so far) and was killed`);
    for (const p of this.pending.splice(0)) p.reject(p.invoke ? tooLarge : broken);
    this.kill().catch(() => {});
  }

  private onReply(line: string): void {
    const msg = parseReply(line);
    if (!msg) return; // not ours: the runtime only writes protocol messages on fd 4
    // Function code can write to fd 4 too: a line that is not the awaited reply (another
    // invocation's id, a stray type) is dropped rather than taken as the answer.
    if (this.pending[0]?.accepts(msg)) this.pending.shift()!.resolve(msg);
  }

  private crashError(ex: ExitResult): InstanceError {
    if (ex.oomKilled) return new InstanceError('OOM_KILLED', `the runtime was OOM-killed (limit ${this.limits.memoryMb} MB)`);
    const how = ex.signal !== null ? `signal ${ex.signal}` : `exit code ${ex.exitCode}`;
    return new InstanceError('RUNTIME_CRASHED', `the runtime exited (${how})${ex.error ? `: ${ex.error}` : ''}`);
  }
}

/** The fields of `to` that `part` changed (memory, pids and disk apart from the CPU). */
function pick(to: FunctionLimits, part: Partial<ContainerLimits>): Partial<FunctionLimits> {
  return {
    ...(part.memoryBytes !== undefined ? { memoryMb: to.memoryMb } : {}),
    ...(part.pids !== undefined ? { pids: to.pids } : {}),
    ...(part.diskBytes !== undefined ? { diskMb: to.diskMb } : {}),
    ...(part.cpus !== undefined ? { cpus: to.cpus, cpuBurst: to.cpuBurst } : {}),
  };
}
