import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from './errors.js';
import { batchingOf, parseTriggerSpec } from './trigger-spec.js';

function issuesOf(body: unknown): string[] {
  try {
    parseTriggerSpec(body);
  } catch (err) {
    assert.ok(err instanceof ValidationError);
    return err.issues.map((i) => i.path);
  }
  assert.fail('accepted');
}

test('defaults of each source', () => {
  const q = parseTriggerSpec({ function: 'f', source: { kind: 'queue', queue: 'orders' } });
  assert.deepEqual(q.source, { kind: 'queue', queue: 'orders', prefix: 'bull' });
  assert.equal(q.concurrency, 10);
  assert.equal(batchingOf(q), undefined);
  const s = parseTriggerSpec({ function: 'f', source: { kind: 'stream', stream: 'ev', group: 'g' }, batchSize: 5 });
  assert.deepEqual(s.source, { kind: 'stream', stream: 'ev', group: 'g', reclaimIdleMs: 60_000 });
  assert.deepEqual(batchingOf(s), { size: 5, windowMs: 0 });
  const c = parseTriggerSpec({ function: 'f', source: { kind: 'cron', schedule: '*/2 * * * * *' } });
  assert.deepEqual(c.source, { kind: 'cron', schedule: '*/2 * * * * *', timezone: 'UTC', overlap: 'skip', catchUp: false });
});

test('each bad field is named', () => {
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'cron', schedule: 'every day' } }), ['source.schedule']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'cron', schedule: '* * * * *', timezone: 'Nowhere/City' } }), ['source.timezone']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'queue', queue: 'q' }, onFailure: { url: 'ftp://x' } }), ['onFailure.url']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'queue', queue: 'q' }, retry: { maxAttempts: 0 } }), ['retry.maxAttempts']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'queue', queue: 'q', redisUrl: 'http://x' } }), ['source.redisUrl']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'tcp' } }), ['source.kind']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'stream', stream: 's' } }), ['source.group']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'cron', schedule: '@every 5s' }, batchSize: 3 }), ['batchSize']);
  assert.deepEqual(issuesOf({ function: 'F!', source: { kind: 'queue', queue: 'q' } }), ['function']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'queue', queue: 'q' }, version: 'v1' }), ['version']);
  assert.deepEqual(issuesOf({ function: 'f', source: { kind: 'queue', queue: 'q' }, extra: 1 }), ['(root)']);
  assert.deepEqual(issuesOf([1]), ['(root)']);
});
