/**
 * Several workers on one machine (separate state dirs) share one queue, both serve,
 * and neither one's garbage collection touches the other's containers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.js';
import { startWorker, type RunningWorker } from '../../worker/main.js';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { STACK_KEY } from '../support/stack.js';

let redis: TestRedis;
let work: string;
const workers: RunningWorker[] = [];
let gw: RunningGateway;

before(async () => {
  redis = await startRedis();
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-workers-'));
  for (const name of ['a', 'b']) {
    workers.push(
      await startWorker({ redisUrl: redis.url, prefix: 'multi', stateDir: path.join(work, name), budgetMb: 1024, pools: true, cgroupRoot: `/faasbox-test-workers-${name}-${process.pid}`, workerId: `worker-${name}` }),
    );
  }
  gw = await startGateway({ apiKey: STACK_KEY, redisUrl: redis.url, prefix: 'multi', port: 0 });
});

after(async () => {
  await gw.close();
  for (const w of workers) {
    await w.close();
    await w.engine.gc({ all: true });
    w.engine.cgroups.removeRoot();
  }
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
});

test('two workers on one machine both serve one queue, and gc on one spares the other', async () => {
  const headers = { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' };
  const d = await fetch(`${gw.url}/v1/functions/shared`, { method: 'PUT', headers, body: JSON.stringify({ runtime: 'nodejs20', code: 'export default async () => { await new Promise((r) => setTimeout(r, 150)); return "ok"; }' }) });
  assert.equal(d.status, 201);
  // Async invocations always go to the shared queue. Each worker in turn is the only one
  // draining it, so each must be able to take work from it.
  const runAsyncOn = async (only: RunningWorker) => {
    const others = workers.filter((w) => w !== only);
    for (const w of others) await w.consumers.shared.pause();
    try {
      const r = await fetch(`${gw.url}/v1/functions/shared/invoke?async=true`, { method: 'POST', headers, body: '{}' });
      assert.equal(r.status, 202);
      const loc = r.headers.get('location')!;
      let rec: { status?: string } = {};
      for (let i = 0; i < 500 && rec.status !== 'succeeded' && rec.status !== 'failed'; i++) {
        await new Promise((res) => setTimeout(res, 20));
        rec = (await (await fetch(`${gw.url}${loc}`, { headers })).json()) as { status?: string };
      }
      assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
    } finally {
      for (const w of others) w.consumers.shared.resume();
    }
  };
  for (const w of workers) await runAsyncOn(w);
  const ran = workers.map((w) => w.pool.slots().filter((s) => s.fn?.startsWith('shared@')).length);
  assert.ok(ran.every((n) => n > 0), `both workers ran the function: ${ran}`);

  const [a, b] = workers as [RunningWorker, RunningWorker];
  const bIds = b.pool.slots().filter((s) => !s.id.startsWith('pending')).map((s) => s.id);
  assert.ok(bIds.length > 0);
  const report = await a.engine.gc();
  assert.deepEqual(report.containers, [], 'a live worker\'s gc removes nothing of its own');
  for (const id of bIds) assert.ok(b.engine.cgroups.open(id), `worker b's cgroup ${id} survived worker a's gc`);
  const after = await fetch(`${gw.url}/v1/functions/shared/invoke`, { method: 'POST', headers, body: '{}' });
  assert.equal(after.status, 200);
});

test('placement sends an invocation to the worker that holds a warm container of its function', async () => {
  const headers = { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' };
  await fetch(`${gw.url}/v1/functions/placed`, { method: 'PUT', headers, body: JSON.stringify({ runtime: 'nodejs20', code: 'export default async () => "here"' }) });
  const first = await fetch(`${gw.url}/v1/functions/placed/invoke`, { method: 'POST', headers, body: '{}' });
  assert.equal(first.status, 200);
  const holders = workers.filter((w) => w.pool.slots().some((s) => s.fn?.startsWith('placed@')));
  assert.equal(holders.length, 1, 'one worker holds the warm container');
  // The holder stops draining the shared queue: only placement (its own queue) can reach it.
  await holders[0]!.consumers.shared.pause();
  // Reports are refreshed every 200 ms; after that every call must find the warm container.
  await new Promise((r) => setTimeout(r, 600));
  const kinds: string[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await fetch(`${gw.url}/v1/functions/placed/invoke`, { method: 'POST', headers, body: '{}' });
    assert.equal(r.status, 200);
    kinds.push(r.headers.get('x-cold-start')!);
  }
  assert.deepEqual(kinds, Array(10).fill('warm'), 'no call went to the worker without a warm container');
  const others = workers.filter((w) => w !== holders[0]);
  assert.ok(others.every((w) => !w.pool.slots().some((s) => s.fn?.startsWith('placed@'))), 'the other worker never specialised it');
});
