/**
 * ConcurrencyLimiter against a real Redis: a function's slots run out at its limit and
 * come back when given back or when a dead holder's slot lapses; the same id renews
 * rather than taking two; limits are per function.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { ConcurrencyLimiter } from '../../common/concurrency.js';

let server: TestRedis;
let redis: Redis;
let limiter: ConcurrencyLimiter;

before(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
  limiter = new ConcurrencyLimiter(redis, `conc${process.pid}`);
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

test('slots run out at the limit and come back when given back', async () => {
  assert.equal(await limiter.take('f', 'a', 2, 10_000), true);
  assert.equal(await limiter.take('f', 'b', 2, 10_000), true);
  assert.equal(await limiter.take('f', 'c', 2, 10_000), false, 'a third at limit 2');
  assert.equal(await limiter.taken('f'), 2);
  assert.equal(await limiter.take('other', 'c', 2, 10_000), true, 'limits are per function');
  await limiter.give('f', 'a');
  assert.equal(await limiter.take('f', 'c', 2, 10_000), true);
  assert.equal(await limiter.taken('f'), 2);
});

test('taking again with the same id renews its slot instead of taking another', async () => {
  assert.equal(await limiter.take('g', 'x', 1, 10_000), true);
  assert.equal(await limiter.take('g', 'x', 1, 10_000), true);
  assert.equal(await limiter.taken('g'), 1);
  assert.equal(await limiter.take('g', 'y', 1, 10_000), false);
});

test('a slot whose holder never gives it back lapses after its hold', async () => {
  assert.equal(await limiter.take('h', 'crashed', 1, 150), true);
  assert.equal(await limiter.take('h', 'next', 1, 10_000), false);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await limiter.take('h', 'next', 1, 10_000), true, 'the lapsed slot is free again');
  assert.equal(await limiter.taken('h'), 1);
  // The key itself expires once nothing holds a slot, so idle functions leave nothing behind.
  assert.ok((await redis.pttl(`conc${process.pid}:concurrency:h`)) <= 10_000);
});
