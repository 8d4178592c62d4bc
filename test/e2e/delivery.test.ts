/**
 * Asynchronous delivery end to end (issue 14): retries with the configured backoff, the
 * attempt number in the function's context, dead letters after the last attempt, their
 * API (list with pages, show, redrive, purge), idempotency keys and async.maxQueued.
 * A real Redis, the real worker and containers, the gateway over HTTP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type TestStack } from '../support/stack.js';

let s: TestStack;
before(async () => {
  s = await startStack('delivery');
});
after(async () => {
  await s.close();
});

// Fails until the attempt named by the event, then answers what its context said.
const FLAKY = `export default async (e, ctx) => {
  console.log('attempt ' + ctx.attempt);
  if (e.sleepMs) await new Promise((r) => setTimeout(r, e.sleepMs));
  if (ctx.attempt < (e.succeedAt ?? Infinity)) throw new Error('attempt ' + ctx.attempt + ' fails');
  return { attempt: ctx.attempt, key: ctx.idempotencyKey ?? null };
};`;

const fixed = (delayMs: number) => ({ type: 'fixed', delayMs, jitter: false });
const async_ = (id: string) => `/v1/invocations/${id}`;

test('a failing attempt is retried after the configured delay; a later success ends succeeded, without the earlier error', async () => {
  const d = await s.deploy('flaky', { runtime: 'nodejs20', code: FLAKY, async: { maxAttempts: 3, backoff: fixed(300) } });
  assert.equal(d.status, 201, d.text);
  assert.deepEqual(d.json.spec.async, { maxAttempts: 3, backoff: fixed(300), maxEventAgeMs: 21_600_000 });
  const r = await s.invoke('flaky', { succeedAt: 2 }, { query: '?async=true' });
  assert.equal(r.status, 202, r.text);
  const rec = await s.finished(async_(r.json.invocationId), 30_000);
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.equal(rec.attempts, 2);
  assert.deepEqual(rec.result, { attempt: 2, key: null });
  assert.equal(rec.error, undefined, 'the failed attempt\'s error is not shown on the success');
  assert.match(rec.stdout, /attempt 1[\s\S]*attempt 2/);
});

test('a function that always fails is dead-lettered after exactly maxAttempts, with the delays between them', async () => {
  const d = await s.deploy('doomed', { runtime: 'nodejs20', code: FLAKY, async: { maxAttempts: 3, backoff: { type: 'exponential', delayMs: 200, jitter: false } } });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('doomed', { n: 1 }, { query: '?async=true' });
  const id = r.json.invocationId as string;
  const rec = await s.finished(async_(id), 30_000);
  assert.equal(rec.status, 'dead-lettered', JSON.stringify(rec));
  assert.equal(rec.attempts, 3);
  assert.equal(rec.deadLetterId, id);
  assert.equal(rec.error.code, 'FUNCTION_ERROR');
  assert.match(rec.error.message, /attempt 3 fails/);

  const dl = await s.get(`/v1/functions/doomed/dead-letters/${rec.deadLetterId}`);
  assert.equal(dl.status, 200, dl.text);
  assert.equal(dl.json.invocationId, id);
  assert.equal(dl.json.function, 'doomed');
  assert.equal(dl.json.version, d.json.version);
  assert.deepEqual(dl.json.event, { n: 1 });
  assert.equal(dl.json.attempts, 3);
  assert.equal(dl.json.error.code, 'FUNCTION_ERROR');
  assert.equal(dl.json.reason, 'attempts-exhausted');
  assert.deepEqual(dl.json.source, { kind: 'http' });
  // 200 ms then 400 ms between the three starts: at least 600 ms from the first to the last.
  const spanMs = Date.parse(dl.json.lastAttemptAt) - Date.parse(dl.json.firstAttemptAt);
  assert.ok(spanMs >= 600, `first to last attempt ${spanMs} ms, configured 200 + 400 ms`);
  console.log(`# dead-lettered after 3 attempts; first to last attempt ${spanMs} ms (configured delays 200 + 400 ms)`);
});

test('a failure that is not retryable (RESULT_TOO_LARGE) is dead-lettered after one attempt', async () => {
  const d = await s.deploy('huge', { runtime: 'nodejs20', code: 'export default async () => "x".repeat(7 * 1024 * 1024);', async: { maxAttempts: 3, backoff: fixed(100) } });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('huge', {}, { query: '?async=true' });
  const rec = await s.finished(async_(r.json.invocationId), 30_000);
  assert.equal(rec.status, 'dead-lettered', JSON.stringify(rec));
  assert.equal(rec.attempts, 1);
  assert.equal(rec.error.code, 'RESULT_TOO_LARGE');
  const dl = await s.get(`/v1/functions/huge/dead-letters/${rec.deadLetterId}`);
  assert.equal(dl.json.reason, 'not-retryable');
  assert.equal(dl.json.attempts, 1);
});
