import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InvocationJob, InvocationResult } from '../queue.js';
import { deliveriesOf, outcomeOf } from './destinations.js';
import { deliveryPolicy } from './retry.js';
import type { Settled } from './settle.js';

const job: InvocationJob = {
  invocationId: '6f1c2a9e-0000-4000-8000-000000000001',
  function: 'orders',
  version: 'sha256:' + 'a'.repeat(64),
  event: { n: 1 },
  mode: 'async',
  enqueuedAt: 0,
  deadline: 1,
  delivery: { source: { kind: 'queue', trigger: 't', queue: 'q', jobId: '7' } },
};
const timings = { queueMs: 1, initMs: 0, execMs: 2, totalMs: 3 };
const ok: InvocationResult = { ok: true, value: { done: true }, startKind: 'warm', timings, workerId: 'w' };
const failed: InvocationResult = { ok: false, error: { code: 'FUNCTION_ERROR', message: 'boom' }, startKind: 'warm', timings, workerId: 'w' };
const settled = (result: InvocationResult, async: Parameters<typeof deliveryPolicy>[0], extra: Partial<Settled> = {}): Settled => ({
  job: { ...job, delivery: { ...job.delivery, ...(extra.job?.delivery ?? {}) } },
  result,
  policy: deliveryPolicy(async, { ...job.delivery, ...(extra.job?.delivery ?? {}) }),
  attempts: 2,
  ...(extra.deadLetter ? { deadLetter: extra.deadLetter } : {}),
});

test('the outcome is the shape of issue 14: id, function, version, status, result or error, attempts, source', () => {
  const o = outcomeOf(settled(ok, undefined), Date.parse('2026-01-01T00:00:00Z'));
  assert.deepEqual(o, {
    invocationId: job.invocationId,
    function: 'orders',
    version: job.version,
    status: 'succeeded',
    result: { done: true },
    attempts: 2,
    source: { kind: 'queue', trigger: 't', queue: 'q', jobId: '7' },
    timings,
    finishedAt: '2026-01-01T00:00:00.000Z',
  });
  const dl = { id: job.invocationId } as Settled['deadLetter'];
  const f = outcomeOf(settled(failed, undefined, { deadLetter: dl }));
  assert.equal(f.status, 'dead-lettered');
  assert.equal(f.deadLetterId, job.invocationId);
  assert.deepEqual(f.error, { code: 'FUNCTION_ERROR', message: 'boom' });
  assert.equal('result' in f, false);
});

test('a success goes to onSuccess only, a failure to onFailure only, each under an id derived from the invocation\'s', () => {
  const async = { maxAttempts: 3, backoff: { type: 'fixed' as const, delayMs: 1, jitter: false }, maxEventAgeMs: 60_000, onSuccess: { queue: 'done' }, onFailure: { function: 'catcher' } };
  const s = deliveriesOf(settled(ok, async));
  assert.deepEqual(s.map((d) => [d.id, d.data.target]), [[`${job.invocationId}.onSuccess`, { kind: 'destination', on: 'onSuccess', destination: { queue: 'done' } }]]);
  const f = deliveriesOf(settled(failed, async));
  assert.deepEqual(f.map((d) => [d.id, d.data.target]), [[`${job.invocationId}.onFailure`, { kind: 'destination', on: 'onFailure', destination: { function: 'catcher' } }]]);
  assert.ok(!s[0]!.id.includes(':'), 'BullMQ refuses ":" in a custom job id');
  assert.deepEqual(deliveriesOf(settled(failed, { ...async, onFailure: undefined })), []);
});

test('X-Callback-Url gets the outcome whatever it is, beside the destinations; the trigger\'s destinations win over the function\'s', () => {
  const withUrl = { job: { ...job, delivery: { ...job.delivery, callbackUrl: 'https://hooks.example.com/x' } } } as Partial<Settled>;
  const f = deliveriesOf(settled(failed, undefined, withUrl));
  assert.deepEqual(f.map((d) => d.id), [`${job.invocationId}.callback`]);
  assert.deepEqual(f[0]!.data.target, { kind: 'openfaas', url: 'https://hooks.example.com/x' });
  const http = { ...ok, value: undefined, http: { status: 201, headers: { 'content-type': 'text/plain' }, body: Buffer.from('hi').toString('base64') } };
  const s = deliveriesOf(settled(http, { maxAttempts: 1, backoff: { type: 'fixed', delayMs: 0, jitter: false }, maxEventAgeMs: 1000, onSuccess: { url: 'https://a.example.com/' } }, withUrl));
  assert.deepEqual(s.map((d) => d.id), [`${job.invocationId}.onSuccess`, `${job.invocationId}.callback`]);
  assert.deepEqual((s[1]!.data.target as { httpResult?: unknown }).httpResult, http.http);
  const p = deliveryPolicy({ maxAttempts: 1, backoff: { type: 'fixed', delayMs: 0, jitter: false }, maxEventAgeMs: 1000, onSuccess: { queue: 'fn' } }, { onSuccess: { queue: 'trigger' } });
  assert.deepEqual(p.onSuccess, { queue: 'trigger' });
});
