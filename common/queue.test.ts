/** A job stores its body once, and the worker gets back exactly the event and bytes the gateway got. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attemptOf, bodyFields, movedData, requestOf, type InvocationJob } from './queue.js';

const base: InvocationJob = { invocationId: 'i', function: 'f', version: 'v', mode: 'async', enqueuedAt: 0, deadline: 1 };
const meta = { method: 'POST', url: '/v1/functions/f/invoke', headers: { 'content-type': 'application/json' } };

function roundTrip(raw: Buffer): { job: InvocationJob; event: unknown; body: Buffer } {
  const event = raw.length === 0 ? null : (JSON.parse(raw.toString('utf8')) as unknown);
  // Through JSON, as BullMQ stores it.
  const job = JSON.parse(JSON.stringify({ ...base, ...bodyFields(event, raw), http: meta })) as InvocationJob;
  const back = requestOf(job);
  assert.deepEqual(back.event, event);
  return { job, event: back.event, body: Buffer.from(back.http!.body, 'base64') };
}

test('compact JSON is stored as the event alone, and its bytes are derived from it', () => {
  const raw = Buffer.from(JSON.stringify({ a: [1, 2, { b: 'ünï' }], c: null }));
  const { job, body } = roundTrip(raw);
  assert.equal(job.body, undefined);
  assert.ok(job.event);
  assert.deepEqual(body, raw);
});

test('any other spelling keeps its bytes (as text) and the event is parsed from them', () => {
  const raw = Buffer.from('{ "n": 1.50, "s": "\\u00e9" }\n');
  const { job, body } = roundTrip(raw);
  assert.equal(job.event, undefined);
  assert.deepEqual(job.body, { text: raw.toString('utf8') });
  assert.deepEqual(body, raw);
});

test('bytes that are not valid UTF-8 travel as base64, exactly', () => {
  const raw = Buffer.concat([Buffer.from('"a'), Buffer.from([0xff, 0xfe]), Buffer.from('"')]);
  const { job, body } = roundTrip(raw);
  assert.ok(job.body && 'base64' in job.body);
  assert.deepEqual(body, raw);
});

test('an empty body is the event null and an empty HTTP body', () => {
  const { event, body } = roundTrip(Buffer.alloc(0));
  assert.equal(event, null);
  assert.equal(body.length, 0);
});

test("a job of an older gateway (event and http.body both set) is read as it was written", () => {
  const job: InvocationJob = { ...base, event: { x: 1 }, http: { ...meta, body: Buffer.from('{"x": 1}').toString('base64') } };
  const back = requestOf(job);
  assert.deepEqual(back.event, { x: 1 });
  assert.equal(Buffer.from(back.http!.body, 'base64').toString(), '{"x": 1}');
});

test('the job holds the body once: its size is the body and a small envelope, not 2.3 times it', () => {
  const event = { items: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['a', 'b'] })) };
  for (const raw of [Buffer.from(JSON.stringify(event)), Buffer.from(JSON.stringify(event, null, 1))]) {
    const stored = Buffer.byteLength(JSON.stringify({ ...base, ...bodyFields(event, raw), http: meta }));
    assert.ok(stored < raw.length * 1.25 + 512, `a ${raw.length}-byte body became a ${stored}-byte job`);
  }
});

test('attemptOf: starts count, throttled and returned pickups do not; a handover carries the attempts spent into the new job', () => {
  assert.equal(attemptOf({ data: base, attemptsStarted: 1, attemptsMade: 0 }), 1);
  // A stalled job taken back, a delayed retry: each a start.
  assert.equal(attemptOf({ data: base, attemptsStarted: 2, attemptsMade: 0 }), 2);
  // Throttled twice, returned once by a drain, then run: still the first attempt.
  assert.equal(attemptOf({ data: { ...base, throttled: 2, returned: 1 }, attemptsStarted: 4, attemptsMade: 0 }), 1);
  // Handed over after a failed first attempt (waiting, delayed for its retry): the new job's first pickup is attempt 2.
  const moved = movedData({ data: { ...base, throttled: 1 }, attemptsStarted: 2, attemptsMade: 0, processedOn: 5 });
  assert.equal(moved.priorAttempts, 1);
  assert.equal(moved.throttled, undefined);
  assert.equal(moved.restarted, true);
  assert.equal(attemptOf({ data: moved, attemptsStarted: 1, attemptsMade: 0 }), 2);
  // Returned by a drain to its worker's own queue, then handed over: still attempt 1 on the next worker.
  const returned = movedData({ data: { ...base, returned: 1 }, attemptsStarted: 1, attemptsMade: 0, processedOn: 5 });
  assert.equal(returned.priorAttempts, undefined);
  assert.equal(attemptOf({ data: returned, attemptsStarted: 1, attemptsMade: 0 }), 1);
  // Never started: moved as it was.
  assert.deepEqual(movedData({ data: base, attemptsStarted: 0, attemptsMade: 0 }), base);
});
