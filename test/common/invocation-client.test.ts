/**
 * InvocationClient's worker lanes against a real Redis and real BullMQ workers: a sync
 * invocation placed on a worker's own queue gets its reply; the lane of a worker whose
 * report is gone is closed, but never under an invocation still waiting on it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { job, report, standIn as standInWorker } from '../support/lanes.js';
import { eventually } from '../support/eventually.js';
import { InvocationClient } from '../../common/invocation-client.js';
import { workersKey } from '../../common/policy/placement.js';

let server: TestRedis;
let redis: Redis;
const prefix = `lanes${process.pid}`;
const want = { fn: 'f@v1', runtime: 'nodejs20', memoryMb: 128 };

before(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

const standIn = (id: string, delayMs: number) => standInWorker(server.url, prefix, id, delayMs);

test("a gone worker's lane is closed once nothing waits on it", { timeout: 30_000 }, async () => {
  const client = await InvocationClient.open({ connection: redis, prefix });
  const fast = standIn('fast', 0);
  const slow = standIn('slow', 1500);
  try {
    await redis.hset(workersKey(prefix), 'fast', JSON.stringify(report('fast')));
    await new Promise((r) => setTimeout(r, 400)); // the client reads reports every 200 ms
    const first = await client.invokeSync(job(), 5000, want);
    assert.equal(first.kind, 'completed');
    assert.equal((first as { returnvalue: { value: string } }).returnvalue.value, 'fast', 'placed on the fast worker');
    assert.equal(client.openLanes, 1);

    await redis.hdel(workersKey(prefix), 'fast');
    await eventually(() => client.openLanes === 0, 5000, "the gone worker's lane to close");

    // An invocation in flight keeps its lane open even after the report goes.
    const keepFresh = setInterval(() => void redis.hset(workersKey(prefix), 'slow', JSON.stringify(report('slow'))), 100);
    await new Promise((r) => setTimeout(r, 400)); // the client has read the slow worker's report
    const inFlight = client.invokeSync(job(), 5000, want);
    await new Promise((r) => setTimeout(r, 200));
    clearInterval(keepFresh);
    await redis.hdel(workersKey(prefix), 'slow');
    await new Promise((r) => setTimeout(r, 600)); // two refreshes without the report
    assert.equal(client.openLanes, 1, 'the lane stays while its invocation waits');
    const out = await inFlight;
    assert.equal(out.kind, 'completed');
    assert.equal((out as { returnvalue: { value: string } }).returnvalue.value, 'slow');
    await eventually(() => client.openLanes === 0, 5000, 'the lane to close after its last invocation');
  } finally {
    await client.close();
    await fast.close();
    await slow.close();
  }
});
