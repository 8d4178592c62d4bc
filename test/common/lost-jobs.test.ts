/**
 * Sync callers of a worker that dies while it runs their job (common/lost-jobs.ts, through
 * InvocationClient), against a real Redis and real BullMQ workers: answered worker-lost once
 * the job's lock lapses or once its worker stops reporting, not at their deadline, and the
 * job withdrawn; a live worker's slow job is left alone.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { job, report, standIn as standInWorker } from '../support/lanes.js';
import { InvocationClient } from '../../common/invocation-client.js';
import { SILENT_MS } from '../../common/lost-jobs.js';
import { INVOCATION_QUEUE } from '../../common/queue.js';
import { workersKey } from '../../common/policy/placement.js';

let server: TestRedis;
let redis: Redis;
const prefix = `lost${process.pid}`;
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

test('a sync invocation whose worker dies while running it is answered worker-lost once the lock lapses, not at its deadline, and is not run again', { timeout: 30_000 }, async () => {
  const client = await InvocationClient.open({ connection: redis, prefix });
  // A worker on the shared queue that takes the job and dies with it: nobody renews its lock of 1.5 s.
  const conn = new Redis(server.url, { maxRetriesPerRequest: null });
  let took!: () => void;
  const taken = new Promise<void>((r) => (took = r));
  const doomed = new Worker(INVOCATION_QUEUE, () => { took(); return new Promise(() => {}); }, { connection: conn, prefix, lockDuration: 1500 });
  // And a live worker slower than the check interval: the lock it holds keeps its job from being taken for lost.
  const live = standIn('live', 3000);
  const keepFresh = setInterval(() => void redis.hset(workersKey(prefix), 'live', JSON.stringify(report('live'))), 100);
  try {
    await new Promise((r) => setTimeout(r, 400)); // the client has read the live worker's report
    const lostJob = job();
    const started = Date.now();
    const lost = client.invokeSync(lostJob, 30_000); // no placement wanted: the shared queue
    await taken;
    await doomed.close(true);
    conn.disconnect();
    const slow = client.invokeSync(job(), 30_000, want);
    const out = await lost;
    const ms = Date.now() - started;
    assert.equal(out.kind, 'worker-lost', JSON.stringify(out));
    console.log(`# answered worker-lost ${ms} ms after the call (lock 1500 ms, checked every 1000 ms; deadline 10000 ms)`);
    assert.ok(ms < lostJob.deadline - started, `answered before the deadline (${ms} ms)`);
    assert.equal(await redis.exists(`${prefix}:${INVOCATION_QUEUE}:${lostJob.invocationId}`), 0, 'the job is withdrawn: no worker runs it again');
    const kept = await slow;
    assert.equal(kept.kind, 'completed', JSON.stringify(kept));
    assert.equal((kept as { returnvalue: { value: string } }).returnvalue.value, 'live');
  } finally {
    clearInterval(keepFresh);
    await redis.hdel(workersKey(prefix), 'live');
    await client.close();
    await live.close();
  }
});

test('a sync invocation whose worker stopped reporting is answered worker-lost before its lock lapses', { timeout: 30_000 }, async () => {
  const client = await InvocationClient.open({ connection: redis, prefix });
  const conn = new Redis(server.url, { maxRetriesPerRequest: null });
  let took!: () => void;
  const taken = new Promise<void>((r) => (took = r));
  // It reports once and then never again; its 30 s lock outlives the test.
  await redis.hset(workersKey(prefix), 'mute', JSON.stringify(report('mute')));
  const doomed = new Worker(INVOCATION_QUEUE, () => { took(); return new Promise(() => {}); }, { connection: conn, prefix, name: 'mute', lockDuration: 30_000 });
  try {
    const lostJob = job();
    const started = Date.now();
    const lost = client.invokeSync(lostJob, 60_000);
    await taken;
    await doomed.close(true);
    conn.disconnect();
    const out = await lost;
    const ms = Date.now() - started;
    assert.equal(out.kind, 'worker-lost', JSON.stringify(out));
    console.log(`# answered worker-lost ${ms} ms after the call (silence ${SILENT_MS} ms, checked every 1000 ms; lock 30000 ms)`);
    assert.equal(await redis.exists(`${prefix}:${INVOCATION_QUEUE}:${lostJob.invocationId}:lock`), 1, 'told before the lock lapsed');
  } finally {
    await redis.hdel(workersKey(prefix), 'mute');
    await client.close();
  }
});
