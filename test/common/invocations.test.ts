/**
 * The invocation record's write rules against a real Redis: a status only moves forward
 * (queued -> running -> final) whatever order the writes land in, `attempts` only grows,
 * and a function keeps at most its limit of records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { InvocationStore, type NewInvocation } from '../../common/invocations.js';
import type { InvocationResult } from '../../common/queue.js';
import { redisClientForFile } from '../support/redis.js';

let redis: Redis;
redisClientForFile((client) => (redis = client));

const ok: InvocationResult = { ok: true, value: { done: true }, startKind: 'warm', timings: { queueMs: 1, initMs: 0, execMs: 2, totalMs: 3 } };
const inv = (fn = 'f'): NewInvocation => ({ id: randomUUID(), function: fn, version: 'v1', mode: 'async' });

test('a queued create that lands after the worker finished does not regress the record', async () => {
  const store = new InvocationStore(redis, `t-${randomUUID()}`);
  const i = inv();
  await store.start(i, 1);
  assert.ok(await store.complete(i.id, ok));
  await store.create(i); // the gateway's write, on its own connection, landing last
  const rec = await store.get(i.id);
  assert.equal(rec?.status, 'succeeded');
  assert.equal(rec?.attempts, 1);
  assert.deepEqual(rec?.result, { done: true });
  assert.ok(rec?.finishedAt && rec.startedAt);
});

test('a late start does not move a finished record back to running; attempts still count it', async () => {
  const store = new InvocationStore(redis, `t-${randomUUID()}`);
  const i = inv();
  await store.create(i);
  await store.start(i, 1);
  await store.complete(i.id, ok);
  await store.start(i, 2);
  const rec = await store.get(i.id);
  assert.equal(rec?.status, 'succeeded');
  assert.equal(rec?.attempts, 2);
});

test('attempts only grow: an earlier attempt number landing late does not lower it', async () => {
  const store = new InvocationStore(redis, `t-${randomUUID()}`);
  const i = inv();
  await store.create(i);
  await store.start(i, 3);
  await store.start(i, 2);
  const rec = await store.get(i.id);
  assert.equal(rec?.status, 'running');
  assert.equal(rec?.attempts, 3);
});

test('a retry after an infrastructure failure runs again, and its outcome is the final one', async () => {
  const store = new InvocationStore(redis, `t-${randomUUID()}`);
  const i = inv();
  await store.create(i);
  await store.start(i, 1);
  await store.start(i, 2);
  await store.complete(i.id, { ...ok, ok: false, value: undefined, error: { code: 'TIMEOUT', message: 'late' } });
  const rec = await store.get(i.id);
  assert.equal(rec?.status, 'failed');
  assert.equal(rec?.error?.code, 'TIMEOUT');
  assert.equal(rec?.attempts, 2);
});

test('a function keeps at most its limit of records: the oldest go, with their output', async () => {
  const prefix = `t-${randomUUID()}`;
  const store = new InvocationStore(redis, prefix, 600, 5);
  const ids: string[] = [];
  for (let n = 0; n < 8; n++) {
    const i = inv('busy');
    ids.push(i.id);
    await store.create(i);
    await store.appendOutput(i.id, 'stdout', `line ${n}`);
  }
  const other = inv('quiet');
  await store.create(other);
  assert.deepEqual(await store.idsOf('busy'), ids.slice(3));
  for (const id of ids.slice(0, 3)) {
    assert.equal(await store.get(id), undefined);
    assert.equal(await redis.exists(`${prefix}:inv:${id}`, `${prefix}:inv:${id}:stdout`), 0);
  }
  for (const id of ids.slice(3)) assert.equal((await store.get(id))?.status, 'queued');
  // Another function's records are not its neighbour's to trim.
  assert.equal((await store.get(other.id))?.status, 'queued');
  assert.ok((await redis.ttl(`${prefix}:fn:busy:records`)) > 0, 'the index expires like the records');
});
