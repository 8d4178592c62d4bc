/**
 * Asynchronous delivery end to end (issue 14): retries with the configured backoff, the
 * attempt number in the function's context, dead letters after the last attempt, their
 * API (list with pages, show, redrive, purge), idempotency keys and async.maxQueued.
 * A real Redis, the real worker and containers, the gateway over HTTP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { STACK_KEY, startStack, type TestStack } from '../support/stack.js';

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

async function post(pathname: string, body: unknown) {
  const r = await fetch(`${s.url}${pathname}`, { method: 'POST', headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : undefined, text };
}

test('dead letters: listed in pages, redriven (all or some, to another version), purged', async () => {
  const d1 = await s.deploy('dlq', { runtime: 'nodejs20', code: FLAKY, async: { maxAttempts: 1 } });
  assert.equal(d1.status, 201, d1.text);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await s.invoke('dlq', { i }, { query: '?async=true' })).json.invocationId);
  for (const id of ids) assert.equal((await s.finished(async_(id), 20_000)).status, 'dead-lettered');

  const p1 = await s.get('/v1/functions/dlq/dead-letters?limit=2');
  assert.equal(p1.status, 200, p1.text);
  assert.equal(p1.json.total, 3);
  assert.equal(p1.json.deadLetters.length, 2);
  assert.ok(p1.json.nextCursor);
  const p2 = await s.get(`/v1/functions/dlq/dead-letters?limit=2&cursor=${p1.json.nextCursor}`);
  assert.equal(p2.json.deadLetters.length, 1);
  assert.equal(p2.json.nextCursor, undefined, 'the last page has no cursor');
  // In the order they were dead-lettered (the three ran at once): every one exactly once across the pages.
  const listed = [...p1.json.deadLetters, ...p2.json.deadLetters].map((e: { id: string; deadLetteredAt: string }) => e);
  assert.deepEqual(listed.map((e) => e.id).sort(), [...ids].sort());
  assert.deepEqual(listed.map((e) => e.deadLetteredAt), listed.map((e) => e.deadLetteredAt).sort(), 'oldest first');

  const bad = await s.get('/v1/functions/dlq/dead-letters?limit=0');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'VALIDATION_FAILED');
  assert.match(bad.text, /limit/);
  const missing = await s.get('/v1/functions/dlq/dead-letters/no-such-id');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, 'DEAD_LETTER_NOT_FOUND');
  const both = await post('/v1/functions/dlq/dead-letters/redrive', { all: true, ids: [ids[0]] });
  assert.equal(both.status, 400, both.text);

  // Redrive one to a fixed version: it runs there and succeeds; its entry goes.
  const d2 = await s.deploy('dlq', { runtime: 'nodejs20', code: 'export default async (e, ctx) => ({ fixed: e.i, source: ctx.attempt });' });
  assert.equal(d2.status, 200, d2.text);
  const one = await post('/v1/functions/dlq/dead-letters/redrive', { ids: [ids[0]] });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.version, d2.json.version);
  assert.equal(one.json.redriven.length, 1);
  const redone = await s.finished(async_(one.json.redriven[0].invocationId), 20_000);
  assert.equal(redone.status, 'succeeded', JSON.stringify(redone));
  assert.deepEqual(redone.result, { fixed: 0, source: 1 });
  assert.equal((await s.get(`/v1/functions/dlq/dead-letters/${ids[0]}`)).status, 404, 'a redriven entry leaves the dead letters');

  // Redrive all to the original (still failing) version: they come back as new dead letters, from a redrive.
  const all = await post('/v1/functions/dlq/dead-letters/redrive', { all: true, version: d1.json.version });
  assert.equal(all.status, 200, all.text);
  assert.equal(all.json.redriven.length, 2);
  for (const r of all.json.redriven) assert.equal((await s.finished(async_(r.invocationId), 20_000)).status, 'dead-lettered');
  const again = await s.get(`/v1/functions/dlq/dead-letters/${all.json.redriven[0].invocationId}`);
  assert.deepEqual(again.json.source, { kind: 'redrive', deadLetter: all.json.redriven[0].id });

  const delOne = await s.del(`/v1/functions/dlq/dead-letters/${all.json.redriven[0].invocationId}`);
  assert.equal(delOne.status, 200, delOne.text);
  const purge = await s.del('/v1/functions/dlq/dead-letters');
  assert.deepEqual(purge.json, { function: 'dlq', deleted: 1 });
  assert.equal((await s.get('/v1/functions/dlq/dead-letters')).json.total, 0);
});

test('an Idempotency-Key makes concurrent and later repeats answer the first id without running again', async () => {
  assert.equal((await s.deploy('once', { runtime: 'nodejs20', code: FLAKY })).status, 201);
  const headers = { 'idempotency-key': 'order-42' };
  const replies = await Promise.all([1, 2, 3, 4].map(() => s.invoke('once', { succeedAt: 1 }, { query: '?async=true', headers })));
  for (const r of replies) assert.equal(r.status, 202, r.text);
  const ids = new Set(replies.map((r) => r.json.invocationId));
  assert.equal(ids.size, 1, 'one invocation for four concurrent repeats');
  assert.equal(replies.filter((r) => r.headers.get('idempotent-replayed') === 'true').length, 3);
  const [id] = [...ids] as [string];
  const rec = await s.finished(async_(id), 20_000);
  assert.deepEqual(rec.result, { attempt: 1, key: 'order-42' }, 'the function sees the key in its context');
  const later = await s.invoke('once', { succeedAt: 1 }, { query: '?async=true', headers });
  assert.equal(later.json.invocationId, id);
  assert.equal(later.headers.get('x-invocation-id'), id);
  // Only one record was ever made for the function: nothing ran twice.
  const { InvocationStore } = await import('../../common/invocations.js');
  const { Redis } = await import('ioredis');
  const redis = new Redis(s.redis.url);
  try {
    assert.deepEqual(await new InvocationStore(redis, s.prefix).idsOf('once'), [id]);
  } finally {
    redis.disconnect();
  }
  const other = await s.invoke('once', { succeedAt: 1 }, { query: '?async=true', headers: { 'idempotency-key': 'order-43' } });
  assert.notEqual(other.json.invocationId, id);
  const badKey = await s.invoke('once', {}, { query: '?async=true', headers: { 'idempotency-key': 'has space' } });
  assert.equal(badKey.status, 400);
  assert.match(badKey.json.error.message, /Idempotency-Key/);
});

test('past async.maxQueued an async invoke answers 429 QUEUE_FULL with Retry-After; room comes back as they finish', async () => {
  assert.equal((await s.deploy('bounded', { runtime: 'nodejs20', code: FLAKY, async: { maxQueued: 2 } })).status, 201);
  const a = await s.invoke('bounded', { succeedAt: 1, sleepMs: 1500 }, { query: '?async=true' });
  const b = await s.invoke('bounded', { succeedAt: 1, sleepMs: 1500 }, { query: '?async=true' });
  assert.equal(a.status, 202);
  assert.equal(b.status, 202);
  const c = await s.invoke('bounded', { succeedAt: 1 }, { query: '?async=true' });
  assert.equal(c.status, 429, c.text);
  assert.equal(c.json.error.code, 'QUEUE_FULL');
  assert.deepEqual(c.json.error.details, { maxQueued: 2 });
  assert.equal(c.headers.get('retry-after'), '1');
  await s.finished(async_(a.json.invocationId), 20_000);
  await s.finished(async_(b.json.invocationId), 20_000);
  const d = await s.invoke('bounded', { succeedAt: 1 }, { query: '?async=true' });
  assert.equal(d.status, 202, d.text);
  assert.equal((await s.finished(async_(d.json.invocationId), 20_000)).status, 'succeeded');
});

test('faasbox dlq ls|show|redrive|purge against the gateway; usage errors exit 2', async () => {
  const { execFile } = await import('node:child_process');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/faasbox.js');
  // Not spawnSync: the gateway answering the CLI runs in this process.
  const cli = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [bin, 'dlq', ...args], { encoding: 'utf8', env: { ...process.env, FAASBOX_URL: s.url, FAASBOX_API_KEY: STACK_KEY } }, (_err, stdout, stderr) =>
        resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
  assert.equal((await s.deploy('clidlq', { runtime: 'nodejs20', code: FLAKY, async: { maxAttempts: 1 } })).status, 201);
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) ids.push((await s.invoke('clidlq', { i }, { query: '?async=true' })).json.invocationId);
  for (const id of ids) await s.finished(async_(id), 20_000);

  const ls = await cli('ls', 'clidlq', '--json', '--limit', '1', '--all');
  assert.equal(ls.code, 0, ls.stderr);
  assert.deepEqual(JSON.parse(ls.stdout).deadLetters.map((e: { id: string }) => e.id).sort(), [...ids].sort(), '--all follows the cursor');
  const human = await cli('ls', 'clidlq');
  assert.match(human.stdout, new RegExp(`${ids[0]}\\s+1\\s+.*FUNCTION_ERROR: attempt 1 fails`));
  assert.match(human.stdout, /2 of 2 dead letters/);
  const show = await cli('show', 'clidlq', ids[0]!, '--json');
  assert.deepEqual(JSON.parse(show.stdout).event, { i: 0 });
  const redrive = await cli('redrive', 'clidlq', ids[0]!);
  assert.equal(redrive.code, 0, redrive.stderr);
  const again = new RegExp(`${ids[0]} -> invocation ([0-9a-f-]{36})`).exec(redrive.stdout);
  assert.ok(again, redrive.stdout);
  // The function still fails: the redriven invocation comes back as a dead letter of its own.
  assert.equal((await s.finished(async_(again[1]!), 20_000)).status, 'dead-lettered');
  const purge = await cli('purge', 'clidlq', '--all', '--json');
  assert.equal(purge.code, 0, purge.stderr);
  assert.equal(JSON.parse(purge.stdout).deleted, 2);
  const missing = await cli('show', 'clidlq', ids[1]!);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /DEAD_LETTER_NOT_FOUND/);
  assert.equal((await cli('purge', 'clidlq')).code, 2);
  assert.equal((await cli('frobnicate', 'clidlq')).code, 2);
});
