import { test } from 'node:test';
import assert from 'node:assert/strict';
import { place, workerQueueName, type WorkerReport } from './placement.js';

const now = 100_000;
const report = (over: Partial<WorkerReport>): WorkerReport => ({ id: 'w', queue: 'q', at: now, freeMb: 1024, warm: {}, stems: {}, inflight: 0, ...over });
const want = { fn: 'f@1', runtime: 'nodejs20', memoryMb: 128 };

test('a worker with an idle warm container of the function wins', () => {
  const a = report({ id: 'a', queue: 'qa', stems: { 'nodejs20/128': 5 } });
  const b = report({ id: 'b', queue: 'qb', warm: { 'f@1': 1 } });
  assert.equal(place([a, b], want, now), 'qb');
});

test('otherwise a worker with a stem cell of the shape, the least loaded first', () => {
  const a = report({ id: 'a', queue: 'qa', stems: { 'nodejs20/128': 1 }, inflight: 5 });
  const b = report({ id: 'b', queue: 'qb', stems: { 'nodejs20/128': 1 }, inflight: 1 });
  const c = report({ id: 'c', queue: 'qc', stems: { 'nodejs20/256': 9 } });
  assert.equal(place([a, b, c], want, now), 'qb');
});

test('a bridge function goes to a worker with a bridge stem cell of its shape, never to one with only none stems', () => {
  const a = report({ id: 'a', queue: 'qa', stems: { 'nodejs20/128': 4 } });
  const b = report({ id: 'b', queue: 'qb', stems: { 'nodejs20/128/bridge': 1 }, inflight: 3 });
  assert.equal(place([a, b], { ...want, network: 'bridge' }, now), 'qb');
  assert.equal(place([a], { ...want, network: 'bridge' }, now), undefined);
  assert.equal(place([b], want, now), undefined, 'nor a none function to a bridge stem');
});

test('no warm container, no stem cell, or only stale reports: the shared queue', () => {
  assert.equal(place([report({ warm: { 'f@0': 3 } })], want, now), undefined);
  assert.equal(place([report({ warm: { 'f@1': 3 }, at: now - 10_000 })], want, now), undefined, 'stale reports are ignored');
  assert.equal(place([], want, now), undefined);
});

test('worker queue names carry no colon', () => {
  assert.equal(workerQueueName('invocations', 'host:1/2'), 'invocations.w.host_1_2');
});
