/**
 * The scheduler rescues work stranded in the queue of a worker that stopped reporting:
 * the job moves to the shared queue and a live worker runs it. And it sizes the worker's
 * pools: the worker keeps the stem cells and warm containers the scheduler decided, not
 * what its own (deliberately different) sizing would give, and sizes itself again once
 * the scheduler is gone.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { startScheduler, type RunningScheduler } from '../../scheduler/main.js';
import { workerQueueName, workersKey, type WorkerReport } from '../../common/policy/placement.js';
import { INVOCATION_JOB_NAME, INVOCATION_QUEUE, invocationJobOptions, type InvocationJob } from '../../common/queue.js';
import { InvocationStore } from '../../common/invocations.js';
import { parseTargets, poolTargetsKey, type SizingConfig } from '../../common/policy/sizing.js';

let s: TestStack;
let sched: RunningScheduler;
let redis: Redis;
const prefix = `t${process.pid}`;

// The worker alone would keep 1 stem cell and, for a function just used by 3 at once,
// 2 warm containers for a minute; the scheduler says 3 stem cells, and 1 warm container
// once the function has been idle for a second.
const WORKER_SIZING: Partial<SizingConfig> = { minStems: 1, maxStems: 1, minWarm: 0, idleTtlMs: 60_000, scaleDownDelayMs: 200 };
const SCHEDULER_SIZING: Partial<SizingConfig> = { minStems: 3, maxStems: 3, minWarm: 1, idleTtlMs: 1000, scaleDownDelayMs: 300 };

before(async () => {
  s = await startStack('scheduler', { sizing: WORKER_SIZING });
  redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  sched = await startScheduler({ redisUrl: s.redis.url, prefix, intervalMs: 100, staleMs: 1000, sizing: SCHEDULER_SIZING });
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

  const rec = await s.finished(`/v1/invocations/${id}`, 15_000, 'the stranded invocation to run');
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.equal(rec.result, 'ran');
  assert.equal(await redis.hexists(workersKey(prefix), 'ghost'), 0, 'the silent worker\'s report is dropped');
  assert.equal(await redis.hexists(workersKey(prefix), s.worker.id), 1, 'a live worker\'s report stays');
});

test("an invocation a silent worker had started runs again elsewhere once its lock lapses; the dead queue is then removed", async () => {
  const d = await s.deploy('restarted', { runtime: 'nodejs20', code: 'export default async () => "ran again"' });
  assert.equal(d.status, 201, d.text);
  const ghostQueue = workerQueueName(INVOCATION_QUEUE, 'ghost-started');
  const id = '21111111-2222-4333-8444-555555555555';
  const job: InvocationJob = { invocationId: id, function: 'restarted', version: d.json.version, event: {}, mode: 'async', enqueuedAt: Date.now(), deadline: Date.now() + 60_000 };
  await new InvocationStore(redis, prefix).create({ id, function: 'restarted', version: d.json.version, mode: 'async' });
  // A worker that takes the job and dies with it: it never finishes, and once it is gone
  // nobody renews the lock.
  const conn = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  let started!: () => void;
  const took = new Promise<void>((r) => (started = r));
  const doomed = new Worker(ghostQueue, () => { started(); return new Promise(() => {}); }, { connection: conn, prefix, lockDuration: 1500 });
  const q = new Queue(ghostQueue, { connection: redis, prefix });
  await q.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job));
  await took;
  await doomed.close(true);
  conn.disconnect();
  const ghost: WorkerReport = { id: 'ghost-started', queue: ghostQueue, at: Date.now() - 60_000, freeMb: 1024, warm: {}, stems: {}, inflight: 1 };
  await redis.hset(workersKey(prefix), 'ghost-started', JSON.stringify(ghost));
  assert.equal(await q.getActiveCount(), 1, 'the job is still active, locked by the dead worker');

  const rec = await s.finished(`/v1/invocations/${id}`, 20_000, 'the started invocation to run again');
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.equal(rec.result, 'ran again');
  await eventually(async () => (await redis.smembers(`${prefix}:orphan-queues`)).length === 0, 5000, 'the orphan queue to be done with');
  assert.equal(await redis.exists(`${prefix}:${ghostQueue}:meta`, `${prefix}:${ghostQueue}:events`, `${prefix}:${ghostQueue}:id`), 0, 'the dead queue\'s keys are gone');
  await q.close();
});

test('a sync invocation a silent worker had started is answered WORKER_LOST by the worker that takes it back, not run again', async () => {
  const d = await s.deploy('once', { runtime: 'nodejs20', code: 'export default async () => { console.log("ran"); return "ran again"; }' });
  assert.equal(d.status, 201, d.text);
  const ghostQueue = workerQueueName(INVOCATION_QUEUE, 'ghost-sync');
  const id = '31111111-2222-4333-8444-555555555555';
  const job: InvocationJob = { invocationId: id, function: 'once', version: d.json.version, event: {}, mode: 'sync', enqueuedAt: Date.now(), deadline: Date.now() + 60_000 };
  const conn = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  let started!: () => void;
  const took = new Promise<void>((r) => (started = r));
  const doomed = new Worker(ghostQueue, () => { started(); return new Promise(() => {}); }, { connection: conn, prefix, lockDuration: 1500 });
  const q = new Queue(ghostQueue, { connection: redis, prefix });
  await q.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job));
  await took;
  await doomed.close(true);
  conn.disconnect();
  const ghost: WorkerReport = { id: 'ghost-sync', queue: ghostQueue, at: Date.now() - 60_000, freeMb: 1024, warm: {}, stems: {}, inflight: 1 };
  await redis.hset(workersKey(prefix), 'ghost-sync', JSON.stringify(ghost));

  const rec = await s.finished(`/v1/invocations/${id}`, 20_000, 'the started sync invocation to be answered');
  assert.equal(rec.status, 'failed', JSON.stringify(rec));
  assert.equal(rec.error.code, 'WORKER_LOST');
  assert.equal(rec.stdout, '', 'the function did not run again');
  await q.close();
});

test('a sync invocation on the shared queue whose worker died is answered WORKER_LOST after BullMQ\'s stalled check, not run again', async () => {
  const d = await s.deploy('stalled', { runtime: 'nodejs20', code: 'export default async () => { console.log("ran"); return "ran again"; }' });
  assert.equal(d.status, 201, d.text);
  const id = '41111111-2222-4333-8444-555555555555';
  const job: InvocationJob = { invocationId: id, function: 'stalled', version: d.json.version, event: {}, mode: 'sync', enqueuedAt: Date.now(), deadline: Date.now() + 60_000 };
  // The stack's worker must not take it first: it stops draining the shared queue until a doomed one has it.
  await s.worker.consumers.shared.pause();
  const conn = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  let started!: () => void;
  const took = new Promise<void>((r) => (started = r));
  const doomed = new Worker(INVOCATION_QUEUE, () => { started(); return new Promise(() => {}); }, { connection: conn, prefix, lockDuration: 1500 });
  const q = new Queue(INVOCATION_QUEUE, { connection: redis, prefix });
  try {
    await q.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job));
    await took;
    await doomed.close(true);
    conn.disconnect();
  } finally {
    s.worker.consumers.shared.resume();
  }
  // The live worker's stalled check (every 5 s with its 10 s lock) moves it back to wait; then it takes it.
  const rec = await s.finished(`/v1/invocations/${id}`, 30_000, 'the stalled sync invocation to be answered');
  assert.equal(rec.status, 'failed', JSON.stringify(rec));
  assert.equal(rec.error.code, 'WORKER_LOST');
  assert.equal(rec.stdout, '', 'the function did not run again');
  await q.close();
});

const idleStems = () => s.worker.pool.slots().filter((x) => x.kind === 'stem' && x.runtime === 'nodejs20' && x.state === 'idle').length;
const stems = () => s.worker.pool.slots().filter((x) => x.kind === 'stem' && x.runtime === 'nodejs20' && x.state !== 'removing').length;
const fnSlots = (name: string) => s.worker.pool.slots().filter((x) => x.fn?.startsWith(`${name}@`) && x.state !== 'removing');
const targets = async () => parseTargets(await redis.hget(poolTargetsKey(prefix), s.worker.id));

test("the worker keeps the scheduler's number of stem cells and drains to the scheduler's minimum after its idle TTL", async () => {
  await eventually(async () => (await targets())?.stems['nodejs20/128'] === 3, 10_000, 'the scheduler to decide 3 stem cells');
  await eventually(() => idleStems() === 3, 30_000, 'the worker to hold 3 stem cells');

  const d = await s.deploy('sized', { runtime: 'nodejs20', code: 'export default async () => { await new Promise((r) => setTimeout(r, 300)); return 1; }' });
  assert.equal(d.status, 201, d.text);
  const key = `sized@${d.json.version}`;
  const calls = await Promise.all([1, 2, 3].map(() => s.invoke('sized')));
  assert.deepEqual(calls.map((r) => r.status), [200, 200, 200], calls.map((r) => r.text).join('\n'));
  assert.equal(fnSlots('sized').length, 3, 'three calls at once, three containers');
  // The scheduler saw the demand: a target for this version exists while it is hot.
  await eventually(async () => ((await targets())?.functions[key] ?? 0) >= 1, 5000, 'a target for the function');

  // Its idle TTL is a second: the pool drains to its minWarm of 1 and stays there.
  await eventually(() => fnSlots('sized').length === 1, 8000, 'the pool to drain to the scheduler\'s minimum');
  assert.equal((await targets())?.functions[key], 1);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(fnSlots('sized').length, 1, 'minWarm keeps one, no scale to zero');
  // The burst took the 3 stem cells; they are replaced up to the scheduler's 3, not the worker's 1.
  await eventually(() => idleStems() === 3, 30_000, '3 stem cells again');
});

test('without a scheduler the worker sizes its pools itself once the last targets are stale', async () => {
  await eventually(() => idleStems() === 3, 30_000, '3 stem cells');
  await sched.close();
  // Targets stay in Redis but age: after the worker's 5 s limit its own sizing (1 stem
  // cell, scale-down delay 200 ms) applies and the extra stem cells go.
  await eventually(() => stems() === 1, 15_000, 'the worker to fall back to its own stem count');
  assert.ok(await redis.hexists(poolTargetsKey(prefix), s.worker.id), 'the stale targets were still there: the worker ignored them');
  const r = await s.invoke('sized');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-cold-start'), 'warm', 'the kept container still serves');
});
