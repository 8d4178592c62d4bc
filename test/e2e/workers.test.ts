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
  const rs = await Promise.all(Array.from({ length: 12 }, () => fetch(`${gw.url}/v1/functions/shared/invoke`, { method: 'POST', headers, body: '{}' }).then(async (r) => ({ status: r.status, body: await r.text() }))));
  assert.deepEqual(rs.map((r) => r.status), Array(12).fill(200), JSON.stringify(rs));
  const busyIn = workers.map((w) => w.pool.slots().filter((s) => s.fn?.startsWith('shared@')).length);
  assert.ok(busyIn.every((n) => n > 0), `both workers ran the function: ${busyIn}`);

  const [a, b] = workers as [RunningWorker, RunningWorker];
  const bIds = b.pool.slots().filter((s) => !s.id.startsWith('pending')).map((s) => s.id);
  assert.ok(bIds.length > 0);
  const report = await a.engine.gc();
  assert.deepEqual(report.containers, [], 'a live worker\'s gc removes nothing of its own');
  for (const id of bIds) assert.ok(b.engine.cgroups.open(id), `worker b's cgroup ${id} survived worker a's gc`);
  const after = await fetch(`${gw.url}/v1/functions/shared/invoke`, { method: 'POST', headers, body: '{}' });
  assert.equal(after.status, 200);
});
