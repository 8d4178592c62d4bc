/**
 * Invocation through the gateway with a real Redis and BullMQ, and a stand-in worker
 * (harness.ts) in place of the container worker: sync and async paths, result and error
 * mapping, invoke keys, and the removal race of sync replies.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { InvocationRecord } from '../../common/invocations.js';
import { HTTP_STATUS } from '../../gateway/errors.js';
import { redisForFile } from '../support/redis.js';
import { auth, jsonHeaders, NODE_CODE, testGateway, type TestGateway } from './harness.js';
import { eventually } from '../support/eventually.js';

const server = redisForFile();
let gw: TestGateway;

afterEach(async () => {
  await gw?.close();
});

/** The invocation's record once it satisfies until. */
async function poll(id: string, until: (r: InvocationRecord) => boolean, headers: Record<string, string> = auth): Promise<InvocationRecord> {
  let rec: InvocationRecord | undefined;
  await eventually(async () => {
    const res = await gw.app.request(`/v1/invocations/${id}`, { headers });
    assert.equal(res.status, 200);
    rec = (await res.json()) as InvocationRecord;
    return until(rec);
  }, 10_000, `invocation ${id} to reach the expected state`);
  return rec!;
}

describe('sync invoke', () => {
  beforeEach(async () => {
    gw = await testGateway(server);
    await gw.deploy('echo', { runtime: 'nodejs20', code: NODE_CODE, memoryMb: 256 });
    await gw.startWorker();
  });

  test('returns the JSON value with invocation id, start kind and Server-Timing', async () => {
    const res = await gw.invoke('echo', { behave: 'ok', n: 42 });
    assert.equal(res.status, 200);
    const id = res.headers.get('x-invocation-id');
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(res.headers.get('x-cold-start'), 'warm');
    assert.match(res.headers.get('server-timing') ?? '', /^queue;dur=[\d.]+, init;dur=1\.5, exec;dur=2\.25, total;dur=[\d.]+$/);
    assert.match(res.headers.get('x-function-version') ?? '', /^sha256:/);
    const json = await res.json();
    assert.deepEqual(json, { echo: { behave: 'ok', n: 42 }, invocationId: id, memoryMb: 256 });

    // The record of a sync invocation is there too, with its output.
    const rec = await poll(id as string, (r) => r.status === 'succeeded');
    assert.deepEqual(rec.result, json);
    assert.equal(rec.mode, 'sync');
    assert.equal(rec.stderr, `ran ${id}\n`);
    assert.equal(rec.startKind, 'warm');
  });

  test('a thaw the worker reports is a Server-Timing phase of its own, and is kept in the record', async () => {
    const res = await gw.invoke('echo', { behave: 'ok', thawMs: 0.125 });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('server-timing') ?? '', /^queue;dur=[\d.]+, init;dur=1\.5, thaw;dur=0\.13, exec;dur=2\.25, total;dur=[\d.]+$/);
    const rec = await poll(res.headers.get('x-invocation-id') as string, (r) => r.status === 'succeeded');
    assert.equal(rec.timings?.thawMs, 0.125);
  });

  test('reports the start kind the worker saw', async () => {
    const res = await gw.invoke('echo', { behave: 'ok', startKind: 'cold' });
    assert.equal(res.headers.get('x-cold-start'), 'cold');
  });

  test('an empty body is a null event', async () => {
    const res = await gw.app.request('/v1/functions/echo/invoke', { method: 'POST', headers: auth });
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).echo, {});
  });

  test('an HTTP-style result becomes the response: status, headers, body', async () => {
    const res = await gw.invoke('echo', { behave: 'http' }, { query: '?x=1' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-from-function'), 'yes');
    assert.equal(res.headers.get('content-type'), 'text/plain');
    assert.ok(res.headers.get('x-invocation-id'));
    const text = await res.text();
    // The function's own content-length (999) was dropped, the gateway frames the body.
    assert.equal(text, 'hello POST /v1/functions/echo/invoke?x=1');
  });

  const failures: [string, string, number][] = [
    ['throw', 'FUNCTION_ERROR', 502],
    ['timeout', 'TIMEOUT', 504],
    ['oom', 'OOM_KILLED', 507],
    ['crash', 'RUNTIME_CRASHED', 500],
  ];
  for (const [behave, code, status] of failures) {
    test(`${code} from the worker answers ${status} with the code`, async () => {
      const res = await gw.invoke('echo', { behave });
      assert.equal(res.status, status);
      assert.equal(HTTP_STATUS[code as keyof typeof HTTP_STATUS], status);
      const json = await res.json();
      assert.equal(json.error.code, code);
      assert.ok(res.headers.get('x-invocation-id'), 'error replies carry the invocation id');
      assert.equal(res.headers.get('x-cold-start'), 'warm');
      if (code === 'FUNCTION_ERROR') assert.match(json.error.details.stack, /at handler/);
      const rec = await poll(res.headers.get('x-invocation-id') as string, (r) => r.status === 'failed');
      assert.equal(rec.error?.code, code);
    });
  }

  test('a worker that throws (infrastructure failure) answers 500 INTERNAL', async () => {
    const res = await gw.invoke('echo', { behave: 'infra-fail' });
    assert.equal(res.status, 500);
    const json = await res.json();
    assert.equal(json.error.code, 'INTERNAL');
    assert.match(json.error.message, /lost its container/);
  });

  test('a malformed worker result answers 500 INTERNAL', async () => {
    const res = await gw.invoke('echo', { behave: 'malformed' });
    assert.equal(res.status, 500);
    assert.equal((await res.json()).error.code, 'INTERNAL');
  });

  test('unknown function: 404 with the management key, 401 without any key', async () => {
    const res = await gw.invoke('nope', {});
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, 'FUNCTION_NOT_FOUND');
    const anon = await gw.app.request('/v1/functions/nope/invoke', { method: 'POST' });
    assert.equal(anon.status, 401);
  });

  test('bad input: 400 invalid JSON, 415 content type, 400 async flag, 400 name', async () => {
    const badJson = await gw.app.request('/v1/functions/echo/invoke', { method: 'POST', headers: jsonHeaders, body: '{nope' });
    assert.equal(badJson.status, 400);
    assert.equal((await badJson.json()).error.code, 'INVALID_JSON');
    const form = await gw.app.request('/v1/functions/echo/invoke', {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'a=1',
    });
    assert.equal(form.status, 415);
    const flag = await gw.invoke('echo', {}, { query: '?async=maybe' });
    assert.equal(flag.status, 400);
    assert.equal((await flag.json()).error.details.issues[0].path, '(root)');
    const name = await gw.invoke('Bad_Name', {});
    assert.equal(name.status, 400);
  });

  test('200 concurrent sync invokes with removeOnComplete: every caller gets its own reply', async () => {
    const n = 200;
    const replies = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const res = await gw.invoke('echo', { behave: 'ok', i });
        return { status: res.status, id: res.headers.get('x-invocation-id'), json: await res.json() };
      }),
    );
    const failed = replies.filter((r) => r.status !== 200);
    assert.equal(failed.length, 0, `failed replies: ${JSON.stringify(failed.slice(0, 3))}`);
    replies.forEach((r, i) => {
      assert.equal(r.json.echo.i, i, 'reply belongs to its own request');
      assert.equal(r.json.invocationId, r.id, 'reply belongs to its own invocation');
    });
    assert.equal(new Set(replies.map((r) => r.id)).size, n);
    // The jobs really were removed on completion: the race the waiter design avoids was live.
    const counts = await gw.deps.queue.queue.getJobCounts('completed', 'failed', 'waiting', 'active');
    assert.deepEqual(counts, { completed: 0, failed: 0, waiting: 0, active: 0 });
    assert.equal(gw.deps.queue.pending, 0, 'no waiter left behind');
  });

  test('stdout is bounded at 64 KiB with a truncated flag', async () => {
    const res = await gw.invoke('echo', { behave: 'ok', stdoutBytes: 100 * 1024 });
    assert.equal(res.status, 200);
    const rec = await poll(res.headers.get('x-invocation-id') as string, (r) => r.status === 'succeeded');
    assert.equal(rec.stdout.length, 64 * 1024);
    assert.equal(rec.stdoutTruncated, true);
    assert.equal(rec.stderrTruncated, false);
  });

  test('metrics count requests by route pattern and observe invocation latency', async () => {
    await gw.invoke('echo', { behave: 'ok' });
    await gw.invoke('echo', { behave: 'throw' });
    await gw.app.request('/no/such/route');
    const text = await (await gw.app.request('/metrics', { headers: auth })).text();
    assert.match(text, /faasbox_gateway_http_requests_total\{method="POST",route="\/v1\/functions\/:name\/invoke",status="200"\} 1/);
    assert.match(text, /faasbox_gateway_http_requests_total\{method="POST",route="\/v1\/functions\/:name\/invoke",status="502"\} 1/);
    assert.match(text, /faasbox_gateway_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
    assert.match(text, /faasbox_invocation_duration_seconds_count\{function="echo",mode="sync",outcome="ok",start_kind="warm"\} 1/);
    assert.match(text, /faasbox_invocation_duration_seconds_count\{function="echo",mode="sync",outcome="FUNCTION_ERROR",start_kind="warm"\} 1/);
  });
});

describe('sync invoke without a worker answering', () => {
  test('503 NO_CAPACITY when no worker starts the job in time; the job is withdrawn', async () => {
    gw = await testGateway(server, { syncQueueTimeoutMs: 300 });
    await gw.deploy('lonely', { runtime: 'nodejs20', code: NODE_CODE });
    const started = Date.now();
    const res = await gw.invoke('lonely', {});
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.code, 'NO_CAPACITY');
    assert.ok(Date.now() - started < 5000, 'answered at the queue deadline, not after the function timeout');
    const id = res.headers.get('x-invocation-id') as string;
    assert.equal(await gw.deps.queue.queue.getJob(id), undefined, 'job removed so no worker runs it later');
    const rec = await poll(id, () => true);
    assert.equal(rec.status, 'failed');
    assert.equal(rec.error?.code, 'NO_CAPACITY');
  });

  test('504 TIMEOUT when a started job never replies within its load and run bounds + grace', async () => {
    gw = await testGateway(server, { syncQueueTimeoutMs: 500, syncGraceMs: 200 });
    await gw.deploy('slow', { runtime: 'nodejs20', code: NODE_CODE, timeoutMs: 300 });
    await gw.startWorker();
    const started = Date.now();
    const res = await gw.invoke('slow', { behave: 'hang' });
    assert.equal(res.status, 504);
    assert.equal((await res.json()).error.code, 'TIMEOUT');
    const waited = Date.now() - started;
    // The load may take max(timeoutMs, 10 s), then the run 300 ms, then 200 ms of grace.
    assert.ok(waited >= 10_000 + 300 + 200 && waited < 15_000, `gave up after ${waited} ms`);
  });
});

describe('async invoke', () => {
  beforeEach(async () => {
    gw = await testGateway(server);
    await gw.deploy('echo', { runtime: 'nodejs20', code: NODE_CODE });
  });

  test('?async=true answers 202 with a Location to poll', async () => {
    await gw.startWorker();
    const res = await gw.invoke('echo', { behave: 'ok', n: 1 }, { query: '?async=true' });
    assert.equal(res.status, 202);
    const { invocationId, status } = await res.json();
    assert.equal(status, 'queued');
    assert.equal(res.headers.get('location'), `/v1/invocations/${invocationId}`);
    assert.equal(res.headers.get('x-invocation-id'), invocationId);
    const rec = await poll(invocationId, (r) => r.status === 'succeeded');
    assert.deepEqual((rec.result as { echo: unknown }).echo, { behave: 'ok', n: 1 });
    assert.equal(rec.mode, 'async');
    assert.equal(rec.attempts, 1);
    assert.ok(rec.timings && rec.timings.execMs === 2.25);
    assert.ok(rec.startedAt && rec.finishedAt);
  });

  test('Prefer: respond-async answers 202; the job waits, durable, until a worker comes', async () => {
    const res = await gw.invoke('echo', { behave: 'throw' }, { headers: { Prefer: 'respond-async' } });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('preference-applied'), 'respond-async');
    const { invocationId } = await res.json();
    assert.equal((await poll(invocationId, () => true)).status, 'queued');
    await gw.startWorker();
    const rec = await poll(invocationId, (r) => r.status === 'failed');
    assert.equal(rec.error?.code, 'FUNCTION_ERROR');
    assert.match(rec.error?.stack ?? '', /at handler/);
  });

  test('an accepted async invocation survives a Redis restart', async () => {
    const res = await gw.invoke('echo', { behave: 'ok', survived: true }, { query: '?async=1' });
    assert.equal(res.status, 202);
    const { invocationId } = await res.json();
    await gw.close();
    await server.restart();
    gw = await testGatewayOnPrefix(gw.prefix);
    await gw.startWorker();
    const rec = await poll(invocationId, (r) => r.status === 'succeeded');
    assert.deepEqual((rec.result as { echo: unknown }).echo, { behave: 'ok', survived: true });
  });

  test('?async=false is sync', async () => {
    await gw.startWorker();
    const res = await gw.invoke('echo', { behave: 'ok' }, { query: '?async=false', headers: { Prefer: 'respond-async' } });
    assert.equal(res.status, 200);
  });
});

/** A gateway over an existing prefix: what a restarted gateway process sees. */
async function testGatewayOnPrefix(prefix: string): Promise<TestGateway> {
  return testGateway(server, { prefix });
}

describe('invocation records', () => {
  beforeEach(async () => {
    gw = await testGateway(server);
  });

  test('404 for an unknown id, 400 for a malformed one, 401 without a key', async () => {
    const unknown = await gw.app.request('/v1/invocations/00000000-0000-4000-8000-000000000000', { headers: auth });
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, 'INVOCATION_NOT_FOUND');
    const malformed = await gw.app.request('/v1/invocations/a%20b', { headers: auth });
    assert.equal(malformed.status, 400);
    const anon = await gw.app.request('/v1/invocations/00000000-0000-4000-8000-000000000000');
    assert.equal(anon.status, 401);
  });
});

describe('invoke API keys', () => {
  const INVOKE_KEY = 'fn-invoke-key-abcdef0123';
  beforeEach(async () => {
    gw = await testGateway(server);
    await gw.deploy('open', { runtime: 'nodejs20', code: NODE_CODE, public: true });
    await gw.deploy('private', { runtime: 'nodejs20', code: NODE_CODE });
    await gw.deploy('keyed', { runtime: 'nodejs20', code: NODE_CODE, invokeKeys: [INVOKE_KEY] });
    await gw.startWorker();
  });

  const call = (name: string, key?: string) =>
    gw.app.request(`/v1/functions/${name}/invoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) },
      body: '{"behave":"ok"}',
    });

  test('a public function needs no key, and its records are readable without one', async () => {
    const res = await call('open');
    assert.equal(res.status, 200);
    const rec = await poll(res.headers.get('x-invocation-id') as string, (r) => r.status === 'succeeded', {});
    assert.equal(rec.function, 'open');
  });

  test('a private function: 401 without a key, 403 with a wrong one, 200 with the management key', async () => {
    assert.equal((await call('private')).status, 401);
    assert.equal((await call('private', 'wrong-key')).status, 403);
    const ok = await call('private', 'test-management-key-0123456789');
    assert.equal(ok.status, 200);
    // Its records are as protected as the function.
    const id = ok.headers.get('x-invocation-id') as string;
    assert.equal((await gw.app.request(`/v1/invocations/${id}`)).status, 401);
    assert.equal((await gw.app.request(`/v1/invocations/${id}`, { headers: { Authorization: 'Bearer wrong' } })).status, 403);
  });

  test("a function's own invoke key works for it and for nothing else", async () => {
    assert.equal((await call('keyed', INVOKE_KEY)).status, 200);
    assert.equal((await call('private', INVOKE_KEY)).status, 403);
    assert.equal((await call('keyed')).status, 401);
  });

  test('413 for an event over the invoke limit', async () => {
    await gw.close();
    gw = await testGateway(server, { maxInvokeBytes: 1024 });
    await gw.deploy('open', { runtime: 'nodejs20', code: NODE_CODE, public: true });
    const res = await gw.invoke('open', { big: 'x'.repeat(2048) });
    assert.equal(res.status, 413);
    assert.equal((await res.json()).error.code, 'PAYLOAD_TOO_LARGE');
  });
});

describe('shutdown', () => {
  test('closing the queue client answers callers still waiting instead of leaving them hanging', async () => {
    gw = await testGateway(server, { syncQueueTimeoutMs: 30_000 });
    await gw.deploy('waits', { runtime: 'nodejs20', code: NODE_CODE });
    const pending = gw.invoke('waits', {});
    await eventually(() => gw.deps.queue.pending > 0, 10_000, 'the call to wait in the queue client');
    await gw.deps.queue.close();
    const res = await pending;
    assert.equal(res.status, 500);
    assert.match((await res.json()).error.message, /shutting down/);
  });
});
