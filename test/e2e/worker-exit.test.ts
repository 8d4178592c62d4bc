/**
 * Sync callers around a worker's stop and crash, with workers in processes of their own:
 * - SIGTERM: what waits in the stopping worker's own queue is handed to the shared queue
 *   at once and served by the other worker, what it runs finishes there, and its queue's
 *   keys are gone;
 * - SIGKILL: the callers of what it was running are answered WORKER_LOST (503,
 *   Retry-After) once its reports stop, well before their deadline and its 10 s lock, and
 *   those invocations are not run again; an async one still completes on the next worker.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { callApi, STACK_KEY } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { startWorker, type RunningWorker, type WorkerConfig } from '../../worker/main.js';
import { Engine } from '../../worker/engine/engine.js';
import { INVOCATION_QUEUE } from '../../common/queue.js';
import { workerQueueName, workersKey, type WorkerReport } from '../../common/policy/placement.js';

const workerModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../worker/main.js');
const prefix = `exit${process.pid}`;
const SYNC_DEADLINE_MS = 10_000; // the gateway's default syncQueueTimeoutMs

let redis: TestRedis;
let conn: Redis;
let gateway: RunningGateway;
let work: string;

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-exit-'));
  redis = await startRedis();
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  gateway = await startGateway({ apiKey: STACK_KEY, redisUrl: redis.url, prefix, port: 0 });
});

after(async () => {
  await gateway.close();
  conn.disconnect();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A worker in a process of its own that stops on SIGTERM as `faasbox worker` does (cli/services.ts: close(), then exit). */
async function workerProcess(cfg: WorkerConfig): Promise<ChildProcess> {
  const script = `const { startWorker } = await import(process.argv[1]);
const w = await startWorker(JSON.parse(process.argv[2]));
process.once('SIGTERM', () => void w.close().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); }));
process.stdout.write('ready\\n');
setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, workerModule, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`worker process exited with ${code} before it was ready`)));
  });
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** What a worker process left on its state dir and cgroup root goes (it may have been killed). */
async function collect(stateDir: string, cgroupRoot: string): Promise<void> {
  const engine = await Engine.open({ stateDir, cgroupRoot });
  await engine.gc({ all: true });
  await engine.close();
  engine.cgroups.removeRoot();
}

async function stopInProcess(w: RunningWorker): Promise<void> {
  await w.close();
  await w.engine.gc({ all: true });
  w.engine.cgroups.removeRoot();
}

const api = (method: string, p: string, body?: unknown) => callApi(gateway.url, method, p, body);

async function report(id: string): Promise<WorkerReport | undefined> {
  const raw = await conn.hget(workersKey(prefix), id);
  return raw ? (JSON.parse(raw) as WorkerReport) : undefined;
}

const HELD = 'export default async (e) => { await new Promise((r) => setTimeout(r, e.ms)); return e.n; }';

test('sync calls waiting in the queue of a worker that gets SIGTERM are served by the other worker at once; its own finish, and its queue is gone', { timeout: 120_000 }, async () => {
  const stateA = path.join(work, 'term-a');
  const rootA = `/faasbox-test-exit-term-a-${process.pid}`;
  // A: pools, 128 MB (one container, and BullMQ concurrency 2 per queue), so that a burst
  // placed on its warm container waits in its own queue. B: no pools, so that placement
  // never picks it; it serves only the shared queue.
  const a = await workerProcess({ redisUrl: redis.url, prefix, workerId: 'term-a', stateDir: stateA, cgroupRoot: rootA, budgetMb: 128, pools: true });
  let b: RunningWorker | undefined;
  const own = new Queue(workerQueueName(INVOCATION_QUEUE, 'term-a'), { connection: conn, prefix });
  try {
    b = await startWorker({ redisUrl: redis.url, prefix, workerId: 'term-b', stateDir: path.join(work, 'term-b'), cgroupRoot: `/faasbox-test-exit-term-b-${process.pid}`, budgetMb: 1024, pools: false });
    const servedByB = new Set<string>();
    b.consumers.shared.on('completed', (job) => servedByB.add(job.id!));
    const d = await api('PUT', '/v1/functions/held', { runtime: 'nodejs20', code: HELD, timeoutMs: 30_000 });
    assert.equal(d.status, 201, JSON.stringify(d.json));
    const fn = `held@${d.json.version}`;
    await eventually(async () => ((await report('term-a'))?.stems['nodejs20/128'] ?? 0) > 0, 30_000, "worker A's stem cell");
    await new Promise((r) => setTimeout(r, 500)); // the gateway reads the reports every 200 ms
    const first = await api('POST', '/v1/functions/held/invoke', { ms: 0, n: 0 });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.notEqual(first.headers.get('x-cold-start'), 'cold', 'placed on worker A (B, without pools, only starts cold)');
    await eventually(async () => ((await report('term-a'))?.warm[fn] ?? 0) > 0, 10_000, "worker A's warm container in its report");
    await new Promise((r) => setTimeout(r, 500));

    const calls = Array.from({ length: 6 }, (_, n) => api('POST', '/v1/functions/held/invoke', { ms: 1500, n: n + 1 }));
    await eventually(async () => (await own.getWaitingCount()) > 0, 10_000, "invocations waiting in worker A's own queue");
    const waiting = new Set((await own.getWaiting()).map((j) => j.id!));
    const term = Date.now();
    a.kill('SIGTERM');
    const replies = await Promise.all(calls);
    const code = await exited(a);

    assert.deepEqual(replies.map((r) => r.status), Array(6).fill(200), JSON.stringify(replies.map((r) => r.json)));
    assert.deepEqual(replies.map((r) => r.json), [1, 2, 3, 4, 5, 6]);
    const moved = replies.filter((r) => waiting.has(r.headers.get('x-invocation-id')!));
    assert.ok(moved.length > 0);
    for (const r of moved) assert.ok(servedByB.has(r.headers.get('x-invocation-id')!), 'a call that waited on A was served by B');
    const after = moved.map((r) => r.at - term).sort((x, y) => x - y);
    console.log(`# ${moved.length} of 6 calls waited in A's queue at SIGTERM; served by B ${after.join(', ')} ms after it (each runs 1500 ms; their deadline was ${SYNC_DEADLINE_MS} ms)`);
    // Served at all means started before their deadline (a worker refuses one past it, queue.ts rule 1).
    assert.equal(code, 0, 'worker A stopped cleanly');
    const left = await conn.keys(`${prefix}:${workerQueueName(INVOCATION_QUEUE, 'term-a')}:*`);
    assert.deepEqual(left, [], "worker A's queue keys are gone");
    assert.equal(await report('term-a'), undefined, "worker A's report is gone");
  } finally {
    if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
    await exited(a);
    await own.close();
    if (b) await stopInProcess(b);
    await collect(stateA, rootA);
  }
});

test('sync calls running on a worker that gets SIGKILL are answered WORKER_LOST once its reports stop, well before their deadline, and not run again; an async one completes elsewhere', { timeout: 180_000 }, async () => {
  const stateA = path.join(work, 'kill-a');
  const rootA = `/faasbox-test-exit-kill-a-${process.pid}`;
  // The default lock (10 s): the callers must not wait for it to lapse.
  const a = await workerProcess({ redisUrl: redis.url, prefix, workerId: 'kill-a', stateDir: stateA, cgroupRoot: rootA, budgetMb: 512, pools: true });
  let b: RunningWorker | undefined;
  const own = new Queue(workerQueueName(INVOCATION_QUEUE, 'kill-a'), { connection: conn, prefix });
  const shared = new Queue(INVOCATION_QUEUE, { connection: conn, prefix });
  try {
    const d = await api('PUT', '/v1/functions/long', { runtime: 'nodejs20', code: HELD, timeoutMs: 30_000 });
    assert.equal(d.status, 201, JSON.stringify(d.json));
    assert.equal((await api('PUT', '/v1/functions/long-async', { runtime: 'nodejs20', code: HELD, timeoutMs: 30_000 })).status, 201);
    await eventually(async () => ((await report('kill-a'))?.stems['nodejs20/128'] ?? 0) > 0, 30_000, "worker A's stem cell");
    await new Promise((r) => setTimeout(r, 500));
    const async = await api('POST', '/v1/functions/long-async/invoke?async=true', { ms: 3000, n: 9 });
    assert.equal(async.status, 202);
    // A is the only worker: every call runs there, from its own queue or the shared one.
    const calls = [1, 2].map((n) => api('POST', '/v1/functions/long/invoke', { ms: 6000, n }));
    const started = Date.now();
    await eventually(async () => (await own.getActiveCount()) + (await shared.getActiveCount()) === 3, 20_000, 'worker A to take all three');
    await eventually(async () => (await api('GET', async.headers.get('location')!)).json.status === 'running', 10_000, 'the async invocation to start');
    const kill = Date.now();
    a.kill('SIGKILL');
    await exited(a);
    const replies = await Promise.all(calls);
    for (const r of replies) {
      assert.equal(r.status, 503, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'WORKER_LOST', JSON.stringify(r.json));
      assert.equal(r.headers.get('retry-after'), '1');
    }
    const afterKill = replies.map((r) => r.at - kill);
    console.log(`# answered WORKER_LOST ${afterKill.join(', ')} ms after SIGKILL (lock 10000 ms, silence 3000 ms), ${replies.map((r) => r.at - started).join(', ')} ms after the calls (deadline ${SYNC_DEADLINE_MS} ms)`);
    assert.ok(replies.every((r) => r.at - started < SYNC_DEADLINE_MS), 'answered before the deadline');

    // The next worker runs the async invocation again (a 202 survives a crash), and not the sync ones.
    // (The sync jobs that A took from the shared queue come back to B too, through BullMQ's stalled check.)
    b = await startWorker({ redisUrl: redis.url, prefix, workerId: 'kill-b', stateDir: path.join(work, 'kill-b'), cgroupRoot: `/faasbox-test-exit-kill-b-${process.pid}`, budgetMb: 1024, pools: true });
    let rec: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    await eventually(async () => {
      rec = (await api('GET', async.headers.get('location')!)).json;
      return rec.status === 'succeeded' || rec.status === 'failed';
    }, 60_000, 'the async invocation to finish on worker B');
    assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
    assert.equal(rec.result, 9);
    for (const r of replies) {
      const id = r.headers.get('x-invocation-id')!;
      const sync = (await api('GET', `/v1/invocations/${id}`)).json;
      assert.equal(sync.status, 'failed', JSON.stringify(sync));
      assert.equal(sync.error.code, 'WORKER_LOST');
    }
    assert.ok(!b.pool.slots().some((x) => x.fn?.startsWith('long@')), 'the lost sync invocations did not run again on B');
  } finally {
    if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
    await exited(a);
    await own.close();
    await shared.close();
    if (b) await stopInProcess(b);
    await collect(stateA, rootA);
  }
});
