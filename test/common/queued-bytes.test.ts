/** The per-function bound on queued async bytes, against a real Redis. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { LAPSE_GRACE_MS, QueuedBytes } from '../../common/queued-bytes.js';
import { redisClientForFile } from '../support/redis.js';

let redis: Redis;
redisClientForFile((client) => (redis = client));

test('admits up to the limit, per function; a release gives the room back, once', async () => {
  const q = new QueuedBytes(redis, `t-${randomUUID()}`);
  const later = Date.now() + 60_000;
  assert.equal(await q.admit('f', 'a', 600, 1000, later), true);
  assert.equal(await q.admit('f', 'b', 600, 1000, later), false);
  assert.equal(await q.admit('g', 'b', 600, 1000, later), true);
  assert.equal(await q.admit('f', 'c', 400, 1000, later), true);
  assert.equal(await q.total('f'), 1000);
  assert.equal(await q.release('f', 'a'), 600);
  assert.equal(await q.release('f', 'a'), 0);
  assert.equal(await q.total('f'), 400);
  assert.equal(await q.admit('f', 'b', 600, 1000, later), true);
});

test('an entry whose release never came lapses after its deadline and grace', async () => {
  const q = new QueuedBytes(redis, `t-${randomUUID()}`);
  assert.equal(await q.admit('f', 'lost', 1000, 1000, Date.now() - LAPSE_GRACE_MS - 1), true);
  assert.equal(await q.admit('f', 'next', 1000, 1000, Date.now() + 60_000), true);
  assert.equal(await q.total('f'), 1000);
});
