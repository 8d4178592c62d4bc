/**
 * SIGTERM drains, with the services in processes of their own (test/support/services.ts):
 * - a worker SIGTERMed while a slow async invocation runs lets it finish within the grace
 *   period: succeeded, one attempt, run once, and the process exits 0;
 * - one that outlasts the grace is stopped and returned to the queue: another worker
 *   completes it, running it exactly once more, and the record shows one attempt and no
 *   failure;
 * - a sync request open at a gateway's SIGTERM gets its answer, while /readyz answers 503
 *   and a new request is refused; then the gateway exits 0.
 * Runs are counted by a side effect the function writes: a line "run <n>" on stdout at
 * its start, which reaches the record (every run's output is appended to it) 100 ms later.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { callApi, STACK_KEY } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { spawnService } from '../support/services.js';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { startWorker, type RunningWorker } from '../../worker/main.js';
import { Engine } from '../../worker/engine/engine.js';
import { InvocationStore } from '../../common/invocations.js';
import { DeadLetters } from '../../common/delivery/dead-letters.js';

const prefix = `drain${process.pid}`;
const SLOW = 'export default async (e) => { console.log(`run ${e.n}`); await new Promise((r) => setTimeout(r, e.ms)); return { done: e.n }; }';

let redis: TestRedis;
let conn: Redis;
let store: InvocationStore;
let gateway: RunningGateway;
let work: string;

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-drain-'));
  redis = await startRedis();
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  store = new InvocationStore(conn, prefix);
  gateway = await startGateway({ apiKey: STACK_KEY, redisUrl: redis.url, prefix, port: 0 });
  const d = await api(gateway.url, 'PUT', '/v1/functions/slow', { runtime: 'nodejs20', code: SLOW, timeoutMs: 30_000 });
  assert.equal(d.status, 201, JSON.stringify(d.json));
});

after(async () => {
  await gateway.close();
  conn.disconnect();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
});

const api = (base: string, method: string, p: string, body?: unknown) => callApi(base, method, p, body);

/** The runs an invocation's record shows: its "run <n>" lines. */
async function runsOf(id: string): Promise<number> {
  const rec = await store.get(id);
  return (rec?.stdout.match(/^run /gm) ?? []).length;
}

function workerConfig(name: string, extra: Record<string, unknown> = {}) {
  return { redisUrl: redis.url, prefix, workerId: name, stateDir: path.join(work, name), cgroupRoot: `/faasbox-test-drain-${name}-${process.pid}`, budgetMb: 512, pools: true, ...extra };
}

/** What a worker process left on its state dir and cgroup root goes (it should leave nothing). */
async function collect(name: string): Promise<string[]> {
  const cfg = workerConfig(name);
  const engine = await Engine.open({ stateDir: cfg.stateDir, cgroupRoot: cfg.cgroupRoot });
  const report = await engine.gc({ all: true });
  await engine.close();
  engine.cgroups.removeRoot();
  return report.containers;
}

async function stopInProcess(w: RunningWorker): Promise<void> {
  await w.close();
  await w.engine.gc({ all: true });
  w.engine.cgroups.removeRoot();
}

async function invokeAsync(event: unknown): Promise<string> {
  const r = await api(gateway.url, 'POST', '/v1/functions/slow/invoke?async=true', event);
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return r.json.invocationId ?? r.headers.get('x-invocation-id');
}

test('a worker SIGTERMed while a slow async invocation runs finishes it within the grace: succeeded, one attempt, run once, exit 0', { timeout: 120_000 }, async () => {
  const a = await spawnService('worker', workerConfig('fin', { drainGraceMs: 20_000 }));
  try {
    const id = await invokeAsync({ ms: 2500, n: 1 });
    await eventually(async () => (await runsOf(id)) === 1, 30_000, 'the invocation to start on the worker');
    const code = await a.term();
    assert.equal(code, 0, 'the worker exited cleanly');
    assert.deepEqual(a.closed, { returned: 0 }, 'nothing was left to return');
    const rec = await store.get(id);
    assert.equal(rec?.status, 'succeeded', JSON.stringify(rec));
    assert.deepEqual(rec?.result, { done: 1 });
    assert.equal(rec?.attempts, 1);
    assert.equal(await runsOf(id), 1, 'it ran once');
  } finally {
    await a.kill();
    assert.deepEqual(await collect('fin'), [], 'the worker tore its containers down');
  }
});

test('an invocation that outlasts the grace goes back to the queue and another worker completes it, once more, not as a failed attempt', { timeout: 120_000 }, async () => {
  const a = await spawnService('worker', workerConfig('over', { drainGraceMs: 1000 }));
  let b: RunningWorker | undefined;
  try {
    const id = await invokeAsync({ ms: 8000, n: 2 });
    await eventually(async () => (await runsOf(id)) === 1, 30_000, 'the invocation to start on worker A');
    const term = Date.now();
    const code = await a.term();
    console.log(`# worker A exited ${Date.now() - term} ms after SIGTERM (grace 1000 ms)`);
    assert.equal(code, 0, 'worker A exited cleanly');
    assert.deepEqual(a.closed, { returned: 1 });
    const waiting = await store.get(id);
    assert.equal(waiting?.attempts, 1);
    assert.ok(waiting?.status === 'running' || waiting?.status === 'queued', `back in the queue, not failed: ${waiting?.status}`);
    // B starts once A is gone, so that what it runs can only be what A returned.
    b = await startWorker({ ...workerConfig('over-b'), pools: false });
    const rec = await (async () => {
      let r;
      await eventually(async () => {
        r = await store.get(id);
        return r?.status === 'succeeded' || r?.status === 'failed' || r?.status === 'dead-lettered';
      }, 60_000, 'the invocation to finish on worker B');
      return r!;
    })();
    assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
    assert.deepEqual(rec.result, { done: 2 });
    assert.equal(rec.attempts, 1, 'the stopped run is not counted as an attempt');
    assert.equal(rec.error ?? null, null, 'no failure was recorded');
    assert.equal(await runsOf(id), 2, 'the stopped run, then exactly one more');
    assert.equal(await new DeadLetters(conn, prefix).get('slow', id), undefined, 'not dead-lettered');
  } finally {
    await a.kill();
    if (b) await stopInProcess(b);
    assert.deepEqual(await collect('over'), [], 'worker A tore its containers down');
  }
});

test('a sync request open at a gateway\'s SIGTERM gets its answer; meanwhile /readyz is 503 and new requests are refused', { timeout: 120_000 }, async () => {
  const w = await startWorker(workerConfig('gw'));
  const g = await spawnService('gateway', { apiKey: STACK_KEY, redisUrl: redis.url, prefix, port: 0, drainGraceMs: 20_000 });
  try {
    const url = g.info.url!;
    assert.equal((await api(url, 'GET', '/readyz')).status, 200);
    const open = api(url, 'POST', '/v1/functions/slow/invoke', { ms: 2500, n: 3 });
    await eventually(syncStarted, 30_000, 'the sync invocation to start');
    const exited = g.exited();
    process.kill(g.pid, 'SIGTERM');
    await eventually(async () => (await api(url, 'GET', '/readyz').catch(() => ({ status: 0 }))).status === 503, 5000, '/readyz to answer 503 while the gateway drains');
    const refused = await api(url, 'POST', '/v1/functions/slow/invoke?async=true', { ms: 0, n: 4 });
    assert.equal(refused.status, 503, JSON.stringify(refused.json));
    assert.equal(refused.json.error.code, 'UNAVAILABLE');
    const answered = await open;
    assert.equal(answered.status, 200, JSON.stringify(answered.json));
    assert.deepEqual(answered.json, { done: 3 });
    assert.equal(await exited, 0, 'the gateway exited cleanly');
  } finally {
    await g.kill();
    await stopInProcess(w);
  }
});

/** Whether the sync invocation of the gateway test has started ("run 3" in its running record). */
async function syncStarted(): Promise<boolean> {
  for (const id of await store.idsOf('slow')) {
    const rec = await store.get(id);
    if (rec?.mode === 'sync' && rec.status === 'running' && rec.stdout.includes('run 3')) return true;
  }
  return false;
}
