/**
 * Destinations end to end (issue 14): a settled async invocation's outcome goes to its
 * onSuccess/onFailure destination - an HTTP callback (signed, verified here with the
 * secret the API reveals), a BullMQ queue read by a plain `bullmq` Worker written here,
 * another function - and to an invoke's X-Callback-Url as OpenFaaS sends it. Callbacks
 * are tried again with backoff; a denied host is refused at deploy. The stack is real
 * (gateway, worker, containers, a scheduler with its delivery worker, redis-server), the
 * callback receivers are HTTP servers on 127.0.0.1, which the test's policy allows.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { startScheduler, type RunningScheduler } from '../../scheduler/main.js';
import { InvocationStore } from '../../common/invocations.js';
import { verifyCallback } from '../../common/delivery/signature.js';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let s: TestStack;
let sched: RunningScheduler;
let redis: Redis;
let receiver: Server;
let base: string;
const metrics = new Registry();
const received: Received[] = [];
/** Per path: the statuses to answer in turn (the last one repeats); 200 when absent. */
const plans = new Map<string, number[]>();

before(async () => {
  s = await startStack('dest', { callbackAllow: ['127.0.0.1'] });
  redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body });
      const plan = plans.get(path) ?? [200];
      const status = plan.length > 1 ? plan.shift()! : plan[0]!;
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  sched = await startScheduler({
    redisUrl: s.redis.url,
    prefix: s.prefix,
    intervalMs: 200,
    triggers: { maxEventBytes: 4096 },
    destinations: { policy: { allow: ['127.0.0.1'] }, settings: { maxAttempts: 4, delayMs: 100, timeoutMs: 5000, concurrency: 5 } },
    secrets: s.secrets,
    metrics,
  });
  const echo = await s.deploy('echo', { runtime: 'nodejs20', code: 'export default async (event) => { if (event && event.fail) throw new Error("asked to fail"); return { got: event }; }' });
  assert.equal(echo.status, 201, echo.text);
});
after(async () => {
  await sched?.close();
  redis?.disconnect();
  receiver?.closeAllConnections();
  await new Promise((r) => receiver?.close(r));
  await s?.close();
});

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${s.url}${p}`, { method, headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: r.status, json: await r.json() };
}

async function secretOf(fn: string): Promise<string> {
  const r = await api('GET', `/v1/functions/${fn}/callback-secret`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.algorithm, 'hmac-sha256');
  return r.json.secret as string;
}

async function arrivals(path: string, n: number, ms = 30_000): Promise<Received[]> {
  await eventually(async () => received.filter((r) => r.path === path).length >= n, ms, `${n} callbacks at ${path}`);
  return received.filter((r) => r.path === path);
}

const deliveries = async (kind: string, outcome: string) => Number(new RegExp(`faasbox_destination_deliveries_total\\{kind="${kind}",outcome="${outcome}"\\} (\\d+)`).exec(await metrics.metrics())?.[1] ?? 0);

test('onSuccess to a callback URL: the record arrives, signed with the function\'s secret over timestamp and body', async () => {
  const path = `/ok-${randomUUID()}`;
  const d = await s.deploy('hooked', { runtime: 'nodejs20', code: 'export default async (e) => ({ doubled: e.n * 2 })', async: { onSuccess: { url: `${base}${path}` } } });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('hooked', { n: 21 }, { query: '?async=true' });
  assert.equal(r.status, 202, r.text);
  const id = r.json.invocationId as string;
  const [cb] = await arrivals(path, 1);
  assert.equal(cb!.headers['x-faasbox-invocation-id'], id);
  assert.equal(cb!.headers['content-type'], 'application/json');
  const secret = await secretOf('hooked');
  assert.equal(verifyCallback(secret, { signature: cb!.headers['x-faasbox-signature'] as string, timestamp: cb!.headers['x-faasbox-timestamp'] as string }, cb!.body), true, 'the signature verifies');
  assert.equal(verifyCallback(secret, { signature: cb!.headers['x-faasbox-signature'] as string, timestamp: cb!.headers['x-faasbox-timestamp'] as string }, cb!.body.replace('42', '43')), false, 'an altered body does not');
  assert.equal(verifyCallback(await secretOf('echo'), { signature: cb!.headers['x-faasbox-signature'] as string, timestamp: cb!.headers['x-faasbox-timestamp'] as string }, cb!.body), false, 'another function\'s secret does not');
  const rec = JSON.parse(cb!.body);
  assert.equal(rec.invocationId, id);
  assert.equal(rec.function, 'hooked');
  assert.equal(rec.version, d.json.version);
  assert.equal(rec.status, 'succeeded');
  assert.deepEqual(rec.result, { doubled: 42 });
  assert.equal(rec.attempts, 1);
  assert.deepEqual(rec.source, { kind: 'http' });
  assert.equal(rec.error, undefined);
});

test('onSuccess to a BullMQ queue: a plain bullmq Worker gets the outcome, under the invocation\'s id', async () => {
  const queue = `outcomes-${randomUUID()}`;
  const d = await s.deploy('queued', { runtime: 'nodejs20', code: 'export default async (e) => ({ seen: e })', async: { onSuccess: { queue } } });
  assert.equal(d.status, 201, d.text);
  const got: Job[] = [];
  const consumer = new Worker(queue, async (job) => void got.push(job), { connection: redis.duplicate() });
  try {
    const r = await s.invoke('queued', { order: 7 }, { query: '?async=true' });
    assert.equal(r.status, 202, r.text);
    await eventually(async () => got.length >= 1, 30_000, 'the outcome in the destination queue');
    const job = got[0]!;
    assert.equal(job.id, r.json.invocationId);
    assert.equal(job.data.invocationId, r.json.invocationId);
    assert.equal(job.data.function, 'queued');
    assert.equal(job.data.status, 'succeeded');
    assert.deepEqual(job.data.result, { seen: { order: 7 } });
    assert.equal(job.data.attempts, 1);
    assert.deepEqual(job.data.source, { kind: 'http' });
  } finally {
    await consumer.close();
    await consumer.disconnect();
  }
});

test('onFailure to another function: it is invoked with the outcome (dead-lettered, with its error) as its event', async () => {
  const catcher = await s.deploy('catcher', { runtime: 'nodejs20', code: 'export default async (outcome) => ({ caught: outcome })' });
  assert.equal(catcher.status, 201, catcher.text);
  const d = await s.deploy('doomed', { runtime: 'nodejs20', code: 'export default async () => { throw new Error("always"); }', async: { maxAttempts: 1, onFailure: { function: 'catcher' } } });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('doomed', { x: 1 }, { query: '?async=true' });
  const id = r.json.invocationId as string;
  const failed = await s.finished(`/v1/invocations/${id}`, 30_000);
  assert.equal(failed.status, 'dead-lettered');
  const store = new InvocationStore(redis, s.prefix);
  let caught: any;
  await eventually(async () => {
    for (const cid of await store.idsOf('catcher')) {
      const rec = await store.get(cid);
      if (rec?.status === 'succeeded' && (rec.result as any)?.caught?.invocationId === id) caught = rec;
    }
    return caught !== undefined;
  }, 30_000, 'catcher to run with the outcome');
  const outcome = caught.result.caught;
  assert.equal(outcome.function, 'doomed');
  assert.equal(outcome.status, 'dead-lettered');
  assert.equal(outcome.deadLetterId, id);
  assert.equal(outcome.error.code, 'FUNCTION_ERROR');
  assert.match(outcome.error.message, /always/);
  assert.equal(outcome.attempts, 1);
  // The catcher's own invocation says where it came from.
  const job = await api('GET', `/v1/invocations/${caught.id}`);
  assert.equal(job.status, 200);
  assert.equal((await store.idsOf('catcher')).length, 1, 'one invocation of the catcher');
});

test('a callback to a denied host or a non-http(s) URL is refused at deploy, at trigger PUT and on X-Callback-Url with 400 naming the field', async () => {
  for (const [url, why] of [
    ['http://10.0.0.1/hook', /denied range/],
    ['http://169.254.169.254/latest/meta-data/', /denied range/],
    ['http://[::1]:8080/', /denied range/],
    ['http://[::ffff:127.0.0.2]/', /denied range/],
    ['http://localhost/x', /loopback/],
  ] as const) {
    const d = await s.deploy('denied', { runtime: 'nodejs20', code: 'export default async () => 1', async: { onSuccess: { url } } });
    assert.equal(d.status, 400, `${url}: ${d.text}`);
    assert.equal(d.json.error.code, 'VALIDATION_FAILED');
    assert.equal(d.json.error.details.issues[0].path, 'async.onSuccess.url');
    assert.match(d.json.error.message, why);
  }
  const ftp = await s.deploy('denied', { runtime: 'nodejs20', code: 'export default async () => 1', async: { onFailure: { url: 'ftp://example.com/x' } } });
  assert.equal(ftp.status, 400, ftp.text);
  assert.equal(ftp.json.error.code, 'VALIDATION_FAILED');
  assert.match(JSON.stringify(ftp.json.error.details.issues), /async\.onFailure/);
  assert.equal((await s.get('/v1/functions/denied')).status, 404, 'nothing was deployed');

  const t = await api('PUT', '/v1/triggers/denied-hook', { function: 'echo', source: { kind: 'queue', queue: 'q' }, onFailure: { url: 'http://192.168.1.10/' } });
  assert.equal(t.status, 400, JSON.stringify(t.json));
  assert.equal(t.json.error.details.issues[0].path, 'onFailure.url');

  const inv = await s.invoke('echo', {}, { query: '?async=true', headers: { 'X-Callback-Url': 'http://172.16.0.5/cb' } });
  assert.equal(inv.status, 400, inv.text);
  assert.equal(inv.json.error.details.issues[0].path, 'X-Callback-Url');
  const gopher = await s.invoke('echo', {}, { query: '?async=true', headers: { 'X-Callback-Url': 'gopher://example.com/' } });
  assert.equal(gopher.status, 400, gopher.text);
});

test('X-Callback-Url on an async invoke: the function\'s result is POSTed there with OpenFaaS\'s headers, signed', async () => {
  const path = `/of-${randomUUID()}`;
  const r = await s.invoke('echo', { hello: 'openfaas' }, { query: '?async=true', headers: { 'X-Callback-Url': `${base}${path}` } });
  assert.equal(r.status, 202, r.text);
  const id = r.json.invocationId as string;
  const [cb] = await arrivals(path, 1);
  assert.deepEqual(JSON.parse(cb!.body), { got: { hello: 'openfaas' } });
  assert.equal(cb!.headers['x-call-id'], id);
  assert.equal(cb!.headers['x-function-status'], '200');
  assert.equal(cb!.headers['x-function-name'], 'echo');
  assert.ok(Number(cb!.headers['x-duration-seconds']) > 0);
  assert.equal(cb!.headers['x-faasbox-invocation-id'], id);
  assert.equal(verifyCallback(await secretOf('echo'), { signature: cb!.headers['x-faasbox-signature'] as string, timestamp: cb!.headers['x-faasbox-timestamp'] as string }, cb!.body), true);

  // A failure is sent too, with its error and a failure status.
  const failPath = `/of-fail-${randomUUID()}`;
  await s.deploy('once', { runtime: 'nodejs20', code: 'export default async () => { throw new Error("nope"); }', async: { maxAttempts: 1 } });
  const f = await s.invoke('once', {}, { query: '?async=true', headers: { 'X-Callback-Url': `${base}${failPath}` } });
  assert.equal(f.status, 202, f.text);
  const [fail] = await arrivals(failPath, 1);
  assert.equal(fail!.headers['x-function-status'], '500');
  assert.equal(JSON.parse(fail!.body).error.code, 'FUNCTION_ERROR');
});

test('a callback server that fails twice and then succeeds gets the record on the third try', async () => {
  const path = `/flaky-${randomUUID()}`;
  plans.set(path, [500, 503, 200]);
  const retriedBefore = await deliveries('url', 'retried');
  const d = await s.deploy('hooked2', { runtime: 'nodejs20', code: 'export default async () => "done"', async: { onSuccess: { url: `${base}${path}` } } });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('hooked2', {}, { query: '?async=true' });
  const tries = await arrivals(path, 3);
  assert.equal(tries.length, 3);
  for (const t of tries) assert.equal(JSON.parse(t.body).invocationId, r.json.invocationId, 'each try carries the same record');
  await eventually(async () => (await deliveries('url', 'delivered')) >= 1, 5000, 'the delivery counted');
  assert.equal((await deliveries('url', 'retried')) - retriedBefore, 2);
  // No fourth try once it succeeded.
  await new Promise((res) => setTimeout(res, 500));
  assert.equal(received.filter((x) => x.path === path).length, 3);
});

test('a callback that fails on every try is given up after maxAttempts, logged and counted, not lost', async () => {
  const path = `/down-${randomUUID()}`;
  plans.set(path, [500]);
  const failedBefore = await deliveries('url', 'failed');
  const d = await s.deploy('hooked3', { runtime: 'nodejs20', code: 'export default async () => 1', async: { onSuccess: { url: `${base}${path}` } } });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('hooked3', {}, { query: '?async=true' });
  await arrivals(path, 4);
  await eventually(async () => (await deliveries('url', 'failed')) === failedBefore + 1, 10_000, 'the final failure counted');
  assert.equal(received.filter((x) => x.path === path).length, 4, 'exactly maxAttempts tries');
  // The delivery job stays in the deliveries queue's failed set, with its reason.
  const q = new Queue('faasbox-deliveries', { connection: redis.duplicate(), prefix: s.prefix });
  try {
    const job = await q.getJob(`${r.json.invocationId}.onSuccess`);
    assert.equal(await job?.getState(), 'failed');
    assert.match(job!.failedReason, /after 4 tries: .*answered 500/);
  } finally {
    await q.close();
    await q.disconnect();
  }
});

test('a queue trigger\'s onSuccess destination gets its invocations\' outcomes, with the source job', async () => {
  const path = `/trigger-${randomUUID()}`;
  const queue = `src-${randomUUID()}`;
  const put = await api('PUT', '/v1/triggers/hooked-orders', { function: 'echo', source: { kind: 'queue', queue }, onSuccess: { url: `${base}${path}` } });
  assert.equal(put.status, 201, JSON.stringify(put.json));
  const producer = new Queue(queue, { connection: redis.duplicate() });
  try {
    const job = await producer.add('order', { id: 99 });
    const [cb] = await arrivals(path, 1);
    const rec = JSON.parse(cb!.body);
    assert.equal(rec.function, 'echo');
    assert.equal(rec.status, 'succeeded');
    assert.deepEqual(rec.result, { got: { id: 99 } });
    assert.deepEqual(rec.source, { kind: 'queue', trigger: 'hooked-orders', queue, jobId: job.id });
  } finally {
    await producer.close();
    await producer.disconnect();
    await api('DELETE', '/v1/triggers/hooked-orders');
  }
});
