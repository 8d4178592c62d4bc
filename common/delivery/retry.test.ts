import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelayMs, deliveryPolicy, nextStep, tooOld } from './retry.js';

const at = { acceptedAt: 0, now: 1000 };

test('defaults are Lambda\'s: 3 attempts, 1 min then 2 min, 6 h max age', () => {
  const p = deliveryPolicy(undefined, undefined);
  assert.equal(p.maxAttempts, 3);
  assert.equal(p.maxEventAgeMs, 6 * 3600_000);
  const noJitter = { ...p.backoff, jitter: false };
  assert.equal(backoffDelayMs(noJitter, 1), 60_000);
  assert.equal(backoffDelayMs(noJitter, 2), 120_000);
  assert.equal(backoffDelayMs({ ...noJitter, type: 'fixed' }, 2), 60_000);
});

test('jitter stays within the upper half of the delay', () => {
  const b = { type: 'fixed' as const, delayMs: 1000, jitter: true };
  assert.equal(backoffDelayMs(b, 1, () => 0), 500);
  assert.equal(backoffDelayMs(b, 1, () => 1), 1000);
});

test('a trigger\'s retry overrides the function\'s async, field by field', () => {
  const fn = { maxAttempts: 5, backoff: { type: 'fixed' as const, delayMs: 10, jitter: false }, maxEventAgeMs: 60_000, onFailure: { function: 'audit' } };
  const p = deliveryPolicy(fn, { retry: { maxAttempts: 2 }, onSuccess: { queue: 'done' } });
  assert.equal(p.maxAttempts, 2);
  assert.equal(p.backoff.delayMs, 10);
  assert.deepEqual(p.onFailure, { function: 'audit' });
  assert.deepEqual(p.onSuccess, { queue: 'done' });
});

test('retryable failures retry until maxAttempts, then dead-letter; VALIDATION_FAILED never retries', () => {
  const p = deliveryPolicy({ maxAttempts: 3, backoff: { type: 'fixed', delayMs: 100, jitter: false }, maxEventAgeMs: 60_000 }, undefined);
  assert.deepEqual(nextStep(p, { ok: false, code: 'FUNCTION_ERROR', attempt: 1, ...at }), { kind: 'retry', delayMs: 100 });
  assert.deepEqual(nextStep(p, { ok: false, code: 'TIMEOUT', attempt: 2, ...at }), { kind: 'retry', delayMs: 100 });
  assert.deepEqual(nextStep(p, { ok: false, code: 'FUNCTION_ERROR', attempt: 3, ...at }), { kind: 'dead-letter', reason: 'attempts-exhausted' });
  assert.deepEqual(nextStep(p, { ok: false, code: 'VALIDATION_FAILED', attempt: 1, ...at }), { kind: 'dead-letter', reason: 'not-retryable' });
  assert.deepEqual(nextStep(p, { ok: true, attempt: 1, ...at }), { kind: 'succeeded' });
});

test('an event that would pass its max age before the next attempt is dead-lettered', () => {
  const p = deliveryPolicy({ maxAttempts: 3, backoff: { type: 'fixed', delayMs: 5000, jitter: false }, maxEventAgeMs: 5500 }, undefined);
  assert.deepEqual(nextStep(p, { ok: false, code: 'FUNCTION_ERROR', attempt: 1, acceptedAt: 0, now: 1000 }), { kind: 'dead-letter', reason: 'event-too-old' });
  assert.equal(tooOld(p, 0, 5501), true);
  assert.equal(tooOld(p, 0, 5000), false);
});
