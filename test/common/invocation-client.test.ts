/**
 * InvocationClient's worker lanes against a real Redis and real BullMQ workers: a sync
 * invocation placed on a worker's own queue gets its reply; the lane of a worker whose
 * report is gone is closed, but never under an invocation still waiting on it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { eventually } from '../support/stack.js';
import { InvocationClient, SILENT_MS } from '../../common/invocation-client.js';
import { INVOCATION_QUEUE, type InvocationJob } from '../../common/queue.js';
import { workerQueueName, workersKey, type WorkerReport } from '../../scheduler/placement.js';

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

function report(id: string): WorkerReport {
  return { id, queue: workerQueueName(INVOCATION_QUEUE, id), at: Date.now(), freeMb: 1024, warm: { 'f@v1': 1 }, stems: {}, inflight: 0 };
}

function job(): InvocationJob {
  const now = Date.now();
  return { invocationId: randomUUID(), function: 'f', version: 'v1', event: {}, mode: 'sync', enqueuedAt: now, deadline: now + 10_000 };
}

/** A stand-in worker on its own queue that answers after delayMs. */
function standIn(id: string, delayMs: number): { worker: Worker; close: () => Promise<void> } {
  const conn = new Redis(server.url, { maxRetriesPerRequest: null });
  const worker = new Worker(
    workerQueueName(INVOCATION_QUEUE, id),
    async () => {
      await new Promise((r) => setTimeout(r, delayMs));
      return { ok: true, value: id };
    },
    // Its id goes with each job it takes (processedBy), as the real worker's does.
    { connection: conn, prefix, name: id },
  );
  return {
    worker,
    close: async () => {
      await worker.close();
      conn.disconnect();
    },
  };
}

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
