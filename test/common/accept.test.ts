/**
 * acceptAsync against a real Redis (records, queued bytes, idempotency keys; the job queue
 * is a stand-in that counts what it was given): a repeat under a key held by another
 * invocation is answered with that one's id, and an acceptance tried again under its own
 * id (its taker died between the claim and the writes, as a trigger's event taken twice
 * does) is completed instead of waiting for an invocation that was never written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { acceptAsync, type AcceptDeps } from '../../common/delivery/accept.js';
import { IdempotencyKeys } from '../../common/delivery/idempotency.js';
import { InvocationStore } from '../../common/invocations.js';
import { QueuedBytes } from '../../common/queued-bytes.js';
import type { InvocationJob } from '../../common/queue.js';
import { redisClientForFile } from '../support/redis.js';

let redis: Redis;
redisClientForFile((client) => (redis = client));

function setup() {
  const prefix = `t-${randomUUID()}`;
  const enqueued: string[] = [];
  const deps: AcceptDeps = {
    invocations: new InvocationStore(redis, prefix),
    queue: { enqueue: async (job: InvocationJob) => void enqueued.push(job.invocationId), withdraw: async () => false } as unknown as AcceptDeps['queue'],
    queued: new QueuedBytes(redis, prefix),
    idempotency: new IdempotencyKeys(redis, prefix),
    roomBytes: 1 << 20,
  };
  return { deps, enqueued };
}

const job = (id: string, key: string): InvocationJob => ({
  invocationId: id,
  function: 'f',
  version: 'sha256:v',
  event: { n: 1 },
  mode: 'async',
  enqueuedAt: Date.now(),
  deadline: Date.now() + 60_000,
  delivery: { idempotencyKey: key },
});

test('a repeat under a key another invocation holds gets that invocation\'s id, and nothing is written', async () => {
  const { deps, enqueued } = setup();
  const first = await acceptAsync(deps, { name: 'f' }, job('a', 'k'));
  assert.deepEqual(first, { invocationId: 'a', repeat: false });
  const again = await acceptAsync(deps, { name: 'f' }, job('b', 'k'));
  assert.deepEqual(again, { invocationId: 'a', repeat: true });
  assert.deepEqual(enqueued, ['a']);
  assert.equal(await deps.invocations.get('b'), undefined);
});

test('an acceptance tried again under its own id after dying between the claim and the writes is completed, its bytes counted once', async () => {
  const { deps, enqueued } = setup();
  // What the dead try left: the key claimed for the id, its bytes admitted, no record, no job.
  assert.equal(await deps.idempotency.claim('f', 'k', 'x'), undefined);
  assert.equal(await deps.queued.admit('f', 'x', 500, deps.roomBytes, Date.now() + 60_000), true);
  const r = await acceptAsync(deps, { name: 'f' }, job('x', 'k'), 500);
  assert.deepEqual(r, { invocationId: 'x', repeat: false });
  assert.deepEqual(enqueued, ['x']);
  assert.equal((await deps.invocations.get('x'))?.status, 'queued');
  assert.equal(await deps.queued.total('f'), 500, 'the same id admitted twice holds its bytes once');
});
