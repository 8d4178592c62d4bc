/**
 * A runtime shim on the host, spoken to as the worker speaks to it (fd 3 requests, fd 4
 * replies, stdout/stderr with end markers; images/PROTOCOL.md), for the shims' protocol
 * tests. The shims' logic does not depend on a container, so these run without one.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { endMarker, type RuntimeMessage, type InvokeMessage, type LoadMessage, type ReadyMessage } from '../../images/protocol.js';

export type Result = RuntimeMessage & { type: 'result' };

const running = new Set<ChildProcess>();

/** Kills every shim still running (for an after() hook). */
export function killShims(): void {
  for (const c of running) c.kill('SIGKILL');
}

/** Fresh code dirs under one temp dir; remove() takes them all. */
export function codeDirs(prefix: string): { codeDir(files: Record<string, string>): string; remove(): void } {
  const work = mkdtempSync(path.join(tmpdir(), prefix));
  let n = 0;
  return {
    codeDir(files) {
      const dir = path.join(work, `fn${++n}`);
      mkdirSync(dir, { recursive: true });
      for (const [name, text] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        writeFileSync(path.join(dir, name), text);
      }
      return dir;
    },
    remove: () => rmSync(work, { recursive: true, force: true }),
  };
}

export class ShimProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private replies: RuntimeMessage[] = [];
  private waiting: ((m: RuntimeMessage) => void) | undefined;
  private buf = '';
  private seq = 0;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(command: string, args: string[], env: Record<string, string> = {}) {
    // An empty environment, as in a container, but for what the test sets.
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], env });
    running.add(this.child);
    this.exit = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        running.delete(this.child);
        resolve({ code, signal });
      }),
    );
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    const replies = this.child.stdio[4] as Readable;
    replies.setEncoding('utf8');
    replies.on('data', (d: string) => {
      this.buf += d;
      for (let nl; (nl = this.buf.indexOf('\n')) >= 0; ) {
        const msg = JSON.parse(this.buf.slice(0, nl)) as RuntimeMessage;
        this.buf = this.buf.slice(nl + 1);
        if (this.waiting) {
          const w = this.waiting;
          this.waiting = undefined;
          w(msg);
        } else this.replies.push(msg);
      }
    });
  }

  get requests(): Writable {
    return this.child.stdio[3] as Writable;
  }

  next(): Promise<RuntimeMessage> {
    const m = this.replies.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply within 10 s; stderr: ${this.stderr}`)), 10_000);
      this.waiting = (msg) => {
        clearTimeout(t);
        resolve(msg);
      };
    });
  }

  send(msg: object): void {
    this.requests.write(`${JSON.stringify(msg)}\n`);
  }

  async load(dir: string, entry: string, extra: Partial<LoadMessage> = {}): Promise<RuntimeMessage> {
    this.send({ type: 'load', codeDir: dir, entry, ...extra });
    return this.next();
  }

  async invoke(event: unknown, extra: Partial<InvokeMessage> = {}): Promise<Result> {
    const id = extra.id ?? `inv-${++this.seq}`;
    const context = { invocationId: id, functionName: 'f', functionVersion: 'v1', memoryLimitMb: 128, deadline: Date.now() + 60_000 };
    this.send({ type: 'invoke', id, event, context, ...extra });
    const r = await this.next();
    assert.equal(r.type, 'result', JSON.stringify(r));
    return r as Result;
  }

  /** Output of one stream up to and including invocation `id`'s marker, removed from the buffer. */
  async until(stream: 'stdout' | 'stderr', id: string): Promise<string> {
    const marker = endMarker(id);
    for (let i = 0; i < 500 && !this[stream].includes(marker); i++) await new Promise((r) => setTimeout(r, 10));
    const at = this[stream].indexOf(marker);
    assert.ok(at >= 0, `no end marker for ${id} on ${stream}: ${JSON.stringify(this[stream].slice(-200))}`);
    const before = this[stream].slice(0, at);
    this[stream] = this[stream].slice(at + marker.length);
    return before;
  }

  /** Invokes and takes the invocation's output on both streams, up to its end markers. */
  async invokeForOutput(event: unknown, id: string): Promise<{ result: Result; stdout: string; stderr: string }> {
    const result = await this.invoke(event, { id });
    return { result, stdout: await this.until('stdout', id), stderr: await this.until('stderr', id) };
  }

  async close(): Promise<void> {
    this.requests.end();
    const ex = await this.exit;
    assert.deepEqual(ex, { code: 0, signal: null });
  }
}

/** A shim that has said "ready". */
export async function bootedShim(make: () => ShimProcess): Promise<ShimProcess> {
  const s = make();
  const ready = await s.next();
  assert.equal(ready.type, 'ready');
  return s;
}

/**
 * One test file's shims, each spawned as `command args` with fds 3/4 as the worker
 * does, and their code dirs; after the file, every shim still running is killed and
 * the dirs removed.
 */
export function shimSuite(
  prefix: string,
  command: string,
  args: string[],
): { spawn(env?: Record<string, string>): ShimProcess; booted(env?: Record<string, string>): Promise<ShimProcess>; codeDir(files: Record<string, string>): string } {
  const dirs = codeDirs(prefix);
  after(() => {
    killShims();
    dirs.remove();
  });
  const spawnShim = (env?: Record<string, string>) => new ShimProcess(command, args, env);
  return { spawn: spawnShim, booted: (env) => bootedShim(() => spawnShim(env)), codeDir: dirs.codeDir };
}

/**
 * The start every shim owes the worker, whatever its language: "ready" first, naming its
 * runtime, pid and boot time; exit 0 once the worker closes fd 3.
 */
export async function assertSaysReady(s: ShimProcess, runtime: string): Promise<void> {
  const ready = (await s.next()) as ReadyMessage;
  assert.equal(ready.type, 'ready');
  assert.equal(ready.runtime, runtime);
  assert.equal(ready.pid, s.child.pid);
  assert.ok(ready.bootMs > 0 && ready.bootMs < 5000, `bootMs ${ready.bootMs}`);
  await s.close();
}

/**
 * The end marker's rule for output larger than a pipe holds, whatever the shim's language:
 * the function loaded from dir/entry writes `bytes` of 'y' and "END\n" to stdout; all of
 * it comes before the marker. Returns the invocation's result.
 */
export async function assertMarkerAfterBigWrite(s: ShimProcess, dir: string, entry: string, event: unknown, bytes: number): Promise<Result> {
  assert.equal((await s.load(dir, entry)).type, 'loaded');
  const { result, stdout } = await s.invokeForOutput(event, 'big');
  assert.equal(stdout.length, bytes + 4);
  assert.ok(stdout.endsWith('END\n'));
  return result;
}
