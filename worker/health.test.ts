import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import type { Slot } from './pool/policy.js';
import { WorkerHealth } from './health.js';

const stem = (runtime: string, state: Slot['state']): Slot => ({ id: `${runtime}-${state}`, kind: 'stem', runtime, memoryMb: 128, state, uses: 0, lastUsedAt: 0 });
const noRedis = {} as Redis;

test('ready once every starting shape has booted a stem cell and the consumers run; not ready again while stopping', () => {
  let slots: Slot[] = [stem('nodejs20', 'starting'), stem('python3', 'starting')];
  let consuming = true;
  const h = new WorkerHealth({ redis: noRedis, slots: () => slots, stemShapes: [{ runtime: 'nodejs20', memoryMb: 128 }, { runtime: 'python3', memoryMb: 128 }], consuming: () => consuming });
  assert.deepEqual(h.readiness(), { ready: false, reason: 'starting: no stem cell booted yet for nodejs20/128, python3/128' });
  slots = [stem('nodejs20', 'idle'), stem('python3', 'starting')];
  assert.match(h.readiness().reason ?? '', /python3\/128$/);
  slots = [stem('python3', 'idle')];
  h.observe();
  // The nodejs20 stem cell was specialised meanwhile: it was booted, which is what counts.
  slots = [];
  assert.deepEqual(h.readiness(), { ready: true });
  consuming = false;
  assert.deepEqual(h.readiness(), { ready: false, reason: 'not consuming its queues' });
  consuming = true;
  h.markStopping();
  assert.deepEqual(h.readiness(), { ready: false, reason: 'stopping: draining its invocations' });
});

test('without pools a worker is ready as soon as it consumes', () => {
  const h = new WorkerHealth({ redis: noRedis, slots: () => [], stemShapes: [], consuming: () => true });
  assert.deepEqual(h.readiness(), { ready: true });
});

test('healthy while Redis answers PING; not when it fails', async () => {
  let fail = false;
  const redis = { ping: async () => (fail ? Promise.reject(new Error('Connection is closed.')) : 'PONG') } as unknown as Redis;
  const h = new WorkerHealth({ redis, slots: () => [], stemShapes: [], consuming: () => true });
  assert.deepEqual(await h.health(), { ok: true, redis: 'ok' });
  fail = true;
  assert.deepEqual(await h.health(), { ok: false, redis: 'Connection is closed.' });
});
