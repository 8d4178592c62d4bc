/**
 * The scheduler rescues work stranded in the queue of a worker that stopped reporting:
 * the job moves to the shared queue and a live worker runs it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startStack, eventually, type TestStack } from '../support/stack.js';
import { startScheduler, type RunningScheduler } from '../../scheduler/main.js';
import { workerQueueName, workersKey, type WorkerReport } from '../../scheduler/placement.js';
import { INVOCATION_JOB_NAME, INVOCATION_QUEUE, invocationJobOptions, type InvocationJob } from '../../common/queue.js';
import { InvocationStore } from '../../common/invocations.js';

let s: TestStack;
let sched: RunningScheduler;
let redis: Redis;
const prefix = `t${process.pid}`;

before(async () => {
  s = await startStack('scheduler');
  redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  sched = await startScheduler({ redisUrl: s.redis.url, prefix, intervalMs: 100, staleMs: 1000 });
});
after(async () => {
  await sched.close();
  redis.disconnect();
  await s.close();
});

test('an invocation waiting in a silent worker\'s queue is moved to the shared queue and runs', async () => {
  const d = await s.deploy('rescued', { runtime: 'nodejs20', code: 'export default async () => "ran"' });
  assert.equal(d.status, 201, d.text);
  const ghostQueue = workerQueueName(INVOCATION_QUEUE, 'ghost');
  const ghost: WorkerReport = { id: 'ghost', queue: ghostQueue, at: Date.now() - 60_000, freeMb: 1024, warm: {}, stems: {}, inflight: 0 };
  await redis.hset(workersKey(prefix), 'ghost', JSON.stringify(ghost));
  const id = '11111111-2222-4333-8444-555555555555';
  const job: InvocationJob = { invocationId: id, function: 'rescued', version: d.json.version, event: {}, mode: 'async', enqueuedAt: Date.now(), deadline: Date.now() + 60_000 };
  await new InvocationStore(redis, prefix).create({ id, function: 'rescued', version: d.json.version, mode: 'async' });
  const q = new Queue(ghostQueue, { connection: redis, prefix });
  await q.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job));
  await q.close();

  let rec: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  await eventually(async () => {
    rec = (await s.get(`/v1/invocations/${id}`)).json;
    return rec?.status === 'succeeded' || rec?.status === 'failed';
  }, 15_000, 'the stranded invocation to run');
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.equal(rec.result, 'ran');
  assert.equal(await redis.hexists(workersKey(prefix), 'ghost'), 0, 'the silent worker\'s report is dropped');
  assert.equal(await redis.hexists(workersKey(prefix), s.worker.id), 1, 'a live worker\'s report stays');
});
