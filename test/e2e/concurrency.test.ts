/**
 * A function's `concurrency` limit end to end: synchronous callers beyond it get 429
 * CONCURRENCY_LIMIT at once, and the slot comes back when an invocation ends, however it
 * ends; asynchronous invocations beyond it wait their turn and never overlap.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type TestStack } from '../support/stack.js';

let s: TestStack;
before(async () => {
  s = await startStack('concurrency');
});
after(async () => {
  await s.close();
});

const SLEEPER = `export default async (e) => {
  const start = Date.now();
  await new Promise((r) => setTimeout(r, e.ms ?? 0));
  if (e.fail) throw new Error('asked to fail');
  return { start, end: Date.now() };
};`;

test('sync callers beyond the limit get 429 CONCURRENCY_LIMIT at once; the slot comes back after any outcome', async () => {
  assert.equal((await s.deploy('one-at-a-time', { runtime: 'nodejs20', concurrency: 1, code: SLEEPER })).status, 201);
  // Warm it first, so the timing below is not a cold start's.
  assert.equal((await s.invoke('one-at-a-time', { ms: 0 })).status, 200);

  const long = s.invoke('one-at-a-time', { ms: 600 });
  await new Promise((r) => setTimeout(r, 150));
  const t = Date.now();
  const refused = await Promise.all([s.invoke('one-at-a-time', { ms: 0 }), s.invoke('one-at-a-time', { ms: 0 })]);
  for (const r of refused) {
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.error.code, 'CONCURRENCY_LIMIT');
    assert.match(r.json.error.message, /one-at-a-time.*concurrency limit/);
    assert.deepEqual(r.json.error.details, { function: 'one-at-a-time', concurrency: 1 });
    assert.equal(r.headers.get('retry-after'), '1');
  }
  assert.ok(Date.now() - t < 400, 'refused at once, not after waiting');
  assert.equal((await long).status, 200);

  // Given back after a success, and after a function error too.
  const failed = await s.invoke('one-at-a-time', { fail: true });
  assert.equal(failed.status, 502, failed.text);
  const next = await s.invoke('one-at-a-time', { ms: 0 });
  assert.equal(next.status, 200, next.text);
});

test('async invocations beyond the limit wait their turn: all run, one at a time, each as one attempt', async () => {
  assert.equal((await s.deploy('serial', { runtime: 'nodejs20', concurrency: 1, code: SLEEPER })).status, 201);
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await s.invoke('serial', { ms: 150 }, { query: '?async=true' });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.invocationId as string);
  }
  type Rec = { status: string; attempts: number; result?: { start: number; end: number } };
  const runs = (await Promise.all(ids.map((id) => s.finished(`/v1/invocations/${id}`, 20_000)))) as Rec[];
  assert.deepEqual(runs.map((r) => r.status), Array(4).fill('succeeded'), JSON.stringify(runs));
  assert.deepEqual(runs.map((r) => r.attempts), Array(4).fill(1), 'waiting for a slot is not an attempt');
  const spans = runs.map((r) => r.result!).sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    assert.ok(spans[i]!.start >= spans[i - 1]!.end, `run ${i} started at ${spans[i]!.start}, before run ${i - 1} ended at ${spans[i - 1]!.end}`);
  }
});

test('throttles are counted per function and mode in /metrics', async () => {
  const text = (await s.get('/metrics')).text;
  const count = (fn: string, mode: string) => Number(new RegExp(`^faasbox_invocations_throttled_total\\{function="${fn}",mode="${mode}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  assert.equal(count('one-at-a-time', 'sync'), 2, 'the two 429s of the first test');
  assert.ok(count('serial', 'async') >= 1, 'the async burst waited at least once');
});

test('a function without a limit is not throttled', async () => {
  assert.equal((await s.deploy('free', { runtime: 'nodejs20', code: SLEEPER })).status, 201);
  const rs = await Promise.all(Array.from({ length: 4 }, () => s.invoke('free', { ms: 200 })));
  assert.deepEqual(rs.map((r) => r.status), Array(4).fill(200));
});
