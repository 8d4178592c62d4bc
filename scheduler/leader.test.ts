import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { redisClientForFile } from '../test/support/redis.js';
import { LeaderLease, leaderKey } from './leader.js';
import { TriggerMetrics } from './triggers/state.js';

let redis: Redis;
redisClientForFile((client) => (redis = client));

test('one holder at a time; the lease lapses without renewal and passes on; release frees it', async () => {
  const a = new LeaderLease(redis, 'p1', 300);
  const b = new LeaderLease(redis, 'p1', 300);
  assert.equal(await a.renew(), true);
  assert.equal(await b.renew(), false);
  assert.equal(await a.renew(), true, 'the holder renews');
  assert.equal(await redis.get(leaderKey('p1')), a.id);
  await new Promise((r) => setTimeout(r, 450));
  assert.equal(await b.renew(), true, 'taken over once lapsed');
  assert.equal(await a.renew(), false);
  assert.equal(a.isLeader, false);
  await a.release(); // not the holder: a no-op
  assert.equal(await redis.get(leaderKey('p1')), b.id);
  await b.release();
  assert.equal(await redis.exists(leaderKey('p1')), 0);
});

test('trigger metrics registered twice on one registry (a lease lost and taken again) share their series', () => {
  const registry = new Registry();
  const first = new TriggerMetrics(registry);
  const second = new TriggerMetrics(registry);
  assert.equal(first.events, second.events);
});
