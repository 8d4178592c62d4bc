/**
 * Queue triggers end to end: producers are plain BullMQ clients written here (as any
 * service would use them), the stack is real (gateway, scheduler with its trigger runner,
 * worker, containers, redis-server). A job completes only once its invocation is final;
 * a batch's reported item failures, and only they, are invoked again; a job whose data an
 * invocation cannot take goes to the dead letters with its reason and the queue moves on; a paused trigger
 * takes nothing and resumes where it stopped; a source Redis SIGKILLed by its pid shows as
 * the trigger's error and the trigger resumes once it is back.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { startScheduler, type RunningScheduler } from '../../scheduler/main.js';
import { InvocationStore, type InvocationRecord } from '../../common/invocations.js';
import { INVOCATION_QUEUE, type InvocationJob } from '../../common/queue.js';
import { launchRedis, stopChild, waitForRedis } from '../../cli/redis.js';

let s: TestStack;
let sched: RunningScheduler;
let redis: Redis;
let store: InvocationStore;
const metrics = new Registry();
const producers: Queue[] = [];

before(async () => {
  s = await startStack('trq');
  redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  store = new InvocationStore(redis, s.prefix);
  sched = await startScheduler({ redisUrl: s.redis.url, prefix: s.prefix, intervalMs: 200, triggers: { maxEventBytes: 4096, lagEveryMs: 200 }, metrics });
  const echo = await s.deploy('echo', { runtime: 'nodejs20', code: 'export default async (event) => { if (event && event.fail) throw new Error("asked to fail"); return { got: event }; }' });
  assert.equal(echo.status, 201, echo.text);
  // Reports items whose data says so as failed, and what it saw.
  const batcher = await s.deploy('batcher', { runtime: 'nodejs20', code: 'export default async (items) => ({ seen: items.map((i) => i.id), batchItemFailures: items.filter((i) => i.data.bad).map((i) => ({ itemIdentifier: i.id })) })' });
  assert.equal(batcher.status, 201, batcher.text);
});
after(async () => {
  for (const q of producers) await q.close();
  await sched.close();
  redis.disconnect();
  await s.close();
});

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${s.url}${p}`, { method, headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: r.status, json: await r.json() };
}

function producer(name: string, connection: Redis | string = s.redis.url): Queue {
  const q = new Queue(name, typeof connection === 'string' ? { connection: { url: connection, maxRetriesPerRequest: null } } : { connection });
  q.on('error', () => {}); // the killed source Redis: expected here
  producers.push(q);
  return q;
}

async function settled(q: Queue, id: string, ms = 30_000): Promise<Job> {
  let job: Job | undefined;
  await eventually(async () => {
    job = await q.getJob(id);
    const state = await job?.getState();
    return state === 'completed' || state === 'failed';
  }, ms, `source job ${id} to finish`);
  return (await q.getJob(id))!;
}

async function records(fn: string): Promise<InvocationRecord[]> {
  const out: InvocationRecord[] = [];
  for (const id of await store.idsOf(fn)) {
    const r = await store.get(id);
    if (r) out.push(r);
  }
  return out;
}

test('each job is one invocation with its data as the event; the job completes once the invocation is final', async () => {
  const put = await api('PUT', '/v1/triggers/orders', { function: 'echo', source: { kind: 'queue', queue: 'orders' }, concurrency: 3, retry: { maxAttempts: 2, backoff: { type: 'fixed', delayMs: 100, jitter: false } } });
  assert.equal(put.status, 201, JSON.stringify(put.json));
  const q = producer('orders');
  const jobs = await Promise.all([1, 2, 3, 4, 5].map((n) => q.add('order', { n })));
  const failing = await q.add('order', { fail: true });
  for (const job of jobs) {
    const done = await settled(q, job.id!);
    assert.equal(await done.getState(), 'completed', done.failedReason);
    assert.equal(done.returnvalue.status, 'succeeded');
    const rec = await store.get(done.returnvalue.invocationId);
    assert.equal(rec?.status, 'succeeded');
    assert.deepEqual(rec?.result, { got: job.data });
    // The job carries its delivery: the source job id as the idempotency key, and the trigger's retry.
    const inv = await new Queue(INVOCATION_QUEUE, { connection: redis, prefix: s.prefix }).getJob(done.returnvalue.invocationId);
    const delivery = (inv?.data as InvocationJob).delivery;
    assert.equal(delivery?.idempotencyKey, job.id);
    assert.deepEqual(delivery?.source, { kind: 'queue', trigger: 'orders', queue: 'orders', jobId: job.id });
    assert.deepEqual(delivery?.retry, { maxAttempts: 2, backoff: { type: 'fixed', delayMs: 100, jitter: false } });
  }
  const failed = await settled(q, failing.id!);
  assert.equal(await failed.getState(), 'failed');
  assert.match(failed.failedReason, /FUNCTION_ERROR: asked to fail/);
  // Delivery tried it twice (the trigger's retry), then dead-lettered it.
  const last = await store.get((await new Queue(INVOCATION_QUEUE, { connection: redis, prefix: s.prefix }).getJobs(['completed', 'failed'])).find((j) => (j.data as InvocationJob).delivery?.idempotencyKey === failing.id)!.id!);
  assert.equal(last?.status, 'dead-lettered');
  assert.equal(last?.attempts, 2);
  assert.equal(failed.attemptsMade, 1, 'delivery retries the invocation; the source job is not tried again on top');
  await eventually(async () => {
    const state = (await api('GET', '/v1/triggers/orders')).json.state;
    return state.succeeded === 5 && state.failed === 1;
  }, 5000, 'the state to count the successes and the failure (it is written every 250 ms)');
  const st = (await api('GET', '/v1/triggers/orders')).json.state;
  assert.equal(st.failed, 1);
  assert.equal(st.fired, 6);
  assert.equal(st.inFlight, 0);
  assert.ok(st.lastFireAt);
  const series = await metrics.metrics();
  assert.match(series, /faasbox_trigger_events_total\{trigger="orders",outcome="succeeded"\} 5/);
  assert.match(series, /faasbox_trigger_events_total\{trigger="orders",outcome="failed"\} 1/);
  assert.match(series, /faasbox_trigger_in_flight\{trigger="orders"\} 0/);
  assert.match(series, /faasbox_trigger_last_fire_timestamp_seconds\{trigger="orders"\} \d/);
  assert.equal((await api('DELETE', '/v1/triggers/orders')).status, 200);
});

test('a batch\'s reported failures, and only they, are invoked again; then each is a dead letter of its own and its job completes pointing at it', async () => {
  const put = await api('PUT', '/v1/triggers/batches', { function: 'batcher', source: { kind: 'queue', queue: 'batches' }, batchSize: 4, batchWindowMs: 5000, retry: { maxAttempts: 3, backoff: { type: 'fixed', delayMs: 100, jitter: false } } });
  assert.equal(put.status, 201, JSON.stringify(put.json));
  const q = producer('batches');
  const [a, b, c, d] = await Promise.all([{}, { bad: true }, {}, { bad: true }].map((data) => q.add('item', data)));
  for (const ok of [a!, c!]) assert.equal(await (await settled(q, ok.id!)).getState(), 'completed');
  for (const bad of [b!, d!]) {
    const job = await settled(q, bad.id!);
    assert.equal(await job.getState(), 'completed');
    const rv = job.returnvalue as { deadLetterId: string; status: string; reason: string };
    assert.equal(rv.status, 'dead-lettered');
    assert.match(rv.reason, /failed in each of 3 attempts/);
    const dl = await api('GET', `/v1/functions/batcher/dead-letters/${rv.deadLetterId}`);
    assert.equal(dl.status, 200, JSON.stringify(dl.json));
    assert.equal(dl.json.reason, 'batch-item-failed');
    assert.equal(dl.json.attempts, 3);
    assert.deepEqual(dl.json.event, [{ id: bad.id, data: { bad: true } }], 'the item alone, as the batch of one the function is given');
    assert.equal(dl.json.source.jobId, bad.id);
  }
  const seen = (await records('batcher')).map((r) => (r.result as { seen: string[] }).seen).sort((x, y) => y.length - x.length);
  assert.deepEqual(seen, [[a!.id, b!.id, c!.id, d!.id], [b!.id, d!.id], [b!.id, d!.id]]);
  await api('DELETE', '/v1/triggers/batches');
});

test('a job an invocation cannot take goes to the function\'s dead letters with its reason, is acknowledged, and does not block the queue', async () => {
  await api('PUT', '/v1/triggers/big', { function: 'echo', source: { kind: 'queue', queue: 'big' }, concurrency: 1 });
  const q = producer('big');
  const huge = await q.add('x', { blob: 'x'.repeat(10_000) });
  const next = await q.add('x', { small: true });
  const refused = await settled(q, huge.id!);
  assert.equal(await refused.getState(), 'completed', refused.failedReason);
  assert.equal(refused.returnvalue.status, 'dead-lettered');
  assert.match(refused.returnvalue.reason, /10\d{3} bytes of JSON, more than the 4096/);
  const later = await settled(q, next.id!);
  assert.equal(await later.getState(), 'completed');
  assert.equal(later.returnvalue.status, 'succeeded');
  const dl = await api('GET', `/v1/functions/echo/dead-letters/${refused.returnvalue.deadLetterId}`);
  assert.equal(dl.status, 200, JSON.stringify(dl.json));
  assert.equal(dl.json.reason, 'event-rejected');
  assert.equal(dl.json.attempts, 0);
  assert.equal(dl.json.error.code, 'VALIDATION_FAILED');
  assert.match(dl.json.error.message, /10\d{3} bytes of JSON, more than the 4096/);
  assert.deepEqual(dl.json.source, { kind: 'queue', trigger: 'big', queue: 'big', jobId: huge.id });
  // The event itself is what could not be kept: its size and a preview are.
  assert.equal(dl.json.event.rejected, true);
  assert.ok(dl.json.event.bytes > 10_000);
  assert.equal(dl.json.event.preview.length, 1024);
  await eventually(async () => (await api('GET', '/v1/triggers/big')).json.state.rejected === 1, 5000, 'the rejection in the state');
  assert.match(await metrics.metrics(), /faasbox_trigger_events_total\{trigger="big",outcome="rejected"\} 1/);
  const st = (await api('GET', '/v1/triggers/big')).json.state;
  assert.match(st.lastError.message, new RegExp(`job ${huge.id}: the event is`));
  assert.ok(Date.parse(st.lastError.at) > 0);
  await api('DELETE', '/v1/triggers/big');
});

test('a paused trigger takes nothing; resumed, it takes what waited', async () => {
  await api('PUT', '/v1/triggers/held', { function: 'echo', source: { kind: 'queue', queue: 'held' } });
  const q = producer('held');
  const first = await q.add('x', { n: 1 });
  assert.equal(await (await settled(q, first.id!)).getState(), 'completed');
  assert.equal((await api('POST', '/v1/triggers/held/pause')).json.paused, true);
  // The runner hears the change at once; give it a moment before adding.
  await new Promise((r) => setTimeout(r, 500));
  const waiting = await Promise.all([2, 3, 4].map((n) => q.add('x', { n })));
  await new Promise((r) => setTimeout(r, 2000));
  for (const j of waiting) assert.equal(await j.getState(), 'waiting', 'nothing is taken while paused');
  await eventually(async () => (await api('GET', '/v1/triggers/held')).json.state.lag === 3, 5000, 'the lag to show the 3 waiting jobs');
  await api('POST', '/v1/triggers/held/resume');
  for (const j of waiting) assert.equal(await (await settled(q, j.id!)).getState(), 'completed');
  await api('DELETE', '/v1/triggers/held');
});

test('a source Redis killed by its pid: the trigger shows the error, the scheduler lives, and it resumes', async () => {
  const src: TestRedis = await startRedis();
  let child: ReturnType<typeof launchRedis> | undefined;
  try {
    await api('PUT', '/v1/triggers/remote', { function: 'echo', source: { kind: 'queue', queue: 'remote', redisUrl: src.url } });
    const q = producer('remote', src.url);
    const before = await q.add('x', { n: 1 });
    assert.equal(await (await settled(q, before.id!)).getState(), 'completed');
    process.kill(src.pid, 'SIGKILL');
    await eventually(async () => (await api('GET', '/v1/triggers/remote')).json.state.connected === false, 15_000, 'the trigger to show its source down');
    const down = (await api('GET', '/v1/triggers/remote')).json.state;
    assert.match(await metrics.metrics(), /faasbox_trigger_source_up\{trigger="remote"\} 0/);
    assert.match(await metrics.metrics(), /faasbox_trigger_errors_total\{trigger="remote"\} [1-9]/);
    assert.match(down.lastError.message, /^source .*(ECONNREFUSED|Connection is closed|ECONNRESET)/);
    await sched.tick(); // the scheduler still works
    child = launchRedis(src.port, src.dir);
    await waitForRedis(child, src.port, src.dir);
    const after = await q.add('x', { n: 2 });
    assert.equal(await (await settled(q, after.id!, 60_000)).getState(), 'completed');
    await eventually(async () => (await api('GET', '/v1/triggers/remote')).json.state.connected === true, 15_000, 'the trigger to show its source up');
  } finally {
    await api('DELETE', '/v1/triggers/remote');
    if (child) await stopChild(child, 'SIGKILL');
    await src.stop().catch(() => {});
  }
});
