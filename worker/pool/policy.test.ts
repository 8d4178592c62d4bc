import { test } from 'node:test';
import assert from 'node:assert/strict';
import { select, evict, evictForStem, reclaim, reclaimStems, type Slot, type Want } from './policy.js';

let n = 0;
const slot = (over: Partial<Slot> = {}): Slot => ({
  id: `s${n++}`,
  kind: 'stem',
  runtime: 'nodejs20',
  memoryMb: 128,
  state: 'idle',
  uses: 0,
  lastUsedAt: 0,
  ...over,
});
const want = (over: Partial<Want> = {}): Want => ({ fn: 'hello@v1', runtime: 'nodejs20', memoryMb: 128, isolation: 'reuse', ...over });

test('select prefers a warm container of the same version, then a stem cell, then cold', () => {
  const stem = slot();
  const warm = slot({ kind: 'function', fn: 'hello@v1', uses: 3, lastUsedAt: 5 });
  const other = slot({ kind: 'function', fn: 'hello@v0', uses: 1 });
  assert.deepEqual(select([stem, other, warm], want()), { kind: 'warm', slot: warm });
  assert.deepEqual(select([stem, other], want()), { kind: 'specialized', slot: stem });
  assert.deepEqual(select([other], want()), { kind: 'cold' });
});

test('select takes the most recently used warm container', () => {
  const a = slot({ kind: 'function', fn: 'hello@v1', lastUsedAt: 1 });
  const b = slot({ kind: 'function', fn: 'hello@v1', lastUsedAt: 9 });
  const r = select([a, b], want());
  assert.equal(r.kind === 'warm' && r.slot, b);
});

test('select skips busy, starting and differently shaped containers', () => {
  const busy = slot({ kind: 'function', fn: 'hello@v1', state: 'busy' });
  const starting = slot({ state: 'starting' });
  const bigger = slot({ memoryMb: 256 });
  const python = slot({ runtime: 'python3' });
  assert.equal(select([busy, starting, bigger, python], want()).kind, 'cold');
});

test('select matches a stem cell\'s network mode: a bridge function takes only a bridge stem, a none function never takes one', () => {
  const none = slot();
  const br = slot({ network: 'bridge' });
  assert.deepEqual(select([none, br], want({ network: 'bridge' })), { kind: 'specialized', slot: br });
  assert.deepEqual(select([br, none], want()), { kind: 'specialized', slot: none });
  assert.equal(select([br], want()).kind, 'cold');
  assert.equal(select([none], want({ network: 'bridge' })).kind, 'cold');
});

test('fresh isolation never hands out a container that served someone', () => {
  const used = slot({ kind: 'function', fn: 'hello@v1', uses: 1 });
  const unused = slot({ kind: 'function', fn: 'hello@v1', uses: 0 });
  assert.equal(select([used], want({ isolation: 'fresh' })).kind, 'cold');
  assert.deepEqual(select([used, unused], want({ isolation: 'fresh' })), { kind: 'warm', slot: unused });
  assert.equal(select([used], want({ isolation: 'reuse' })).kind, 'warm');
});

test('evict frees idle memory least recently used first, stems before functions, never busy', () => {
  const busy = slot({ kind: 'function', fn: 'a@1', state: 'busy', memoryMb: 256 });
  const oldFn = slot({ kind: 'function', fn: 'b@1', lastUsedAt: 1 });
  const newFn = slot({ kind: 'function', fn: 'c@1', lastUsedAt: 9 });
  const stem = slot({ lastUsedAt: 99 });
  const all = [busy, oldFn, newFn, stem];
  assert.deepEqual(evict(all, 128, 1024), []);
  assert.deepEqual(evict(all, 128, 640), [stem]);
  assert.deepEqual(evict(all, 256, 640), [stem, oldFn]);
  assert.equal(evict(all, 1024, 640), undefined, 'busy memory cannot be reclaimed');
});

test('evictForStem makes room for a stem cell only from function containers idle long enough, oldest first', () => {
  const now = 10_000;
  const stem = slot();
  const busy = slot({ kind: 'function', fn: 'a@v1', state: 'busy', lastUsedAt: 0 });
  const old = slot({ kind: 'function', fn: 'b@v1', lastUsedAt: 1_000 });
  const older = slot({ kind: 'function', fn: 'c@v1', lastUsedAt: 500 });
  const recent = slot({ kind: 'function', fn: 'd@v1', lastUsedAt: 9_900 });
  const all = [stem, busy, old, older, recent];
  assert.deepEqual(evictForStem(all, 128, 1024, now, 1_000), [], 'room left: nothing goes');
  assert.deepEqual(evictForStem(all, 128, 640, now, 1_000), [older], 'the stem is kept; the oldest idle function goes');
  assert.deepEqual(evictForStem(all, 256, 640, now, 1_000), [older, old]);
  assert.equal(evictForStem(all, 384, 640, now, 1_000), undefined, 'a recently used function is not evicted for a stem');
});

test('reclaim removes idle excess containers of one function, oldest first', () => {
  const a = slot({ kind: 'function', fn: 'f@1', lastUsedAt: 1 });
  const b = slot({ kind: 'function', fn: 'f@1', lastUsedAt: 5 });
  const c = slot({ kind: 'function', fn: 'f@1', lastUsedAt: 3, state: 'busy' });
  const other = slot({ kind: 'function', fn: 'g@1' });
  assert.deepEqual(reclaim([a, b, c, other], 'f@1', 1), [a, b]);
  assert.deepEqual(reclaim([a, b, c, other], 'f@1', 3), []);
  assert.deepEqual(reclaim([a, b, c], 'f@1', 0), [a, b], 'busy ones are left to finish');
  assert.deepEqual(reclaim([a, b, c, other], 'f@1', 1, 10, 7), [a], 'only those idle for the scale-down delay');
});

test('reclaimStems removes idle stems of one shape beyond the target once unused long enough', () => {
  const a = slot({ lastUsedAt: 1 });
  const b = slot({ lastUsedAt: 5 });
  const starting = slot({ state: 'starting', lastUsedAt: 0 });
  const other = slot({ memoryMb: 256, lastUsedAt: 0 });
  const fn = slot({ kind: 'function', fn: 'f@1', lastUsedAt: 0 });
  assert.deepEqual(reclaimStems([a, b, starting, other, fn], { runtime: 'nodejs20', memoryMb: 128 }, 1), [a, b], 'starting ones count but are not taken');
  assert.deepEqual(reclaimStems([a, b, other], { runtime: 'nodejs20', memoryMb: 128 }, 1), [a]);
  assert.deepEqual(reclaimStems([a, b, other], { runtime: 'nodejs20', memoryMb: 128 }, 2), []);
  assert.deepEqual(reclaimStems([a, b], { runtime: 'nodejs20', memoryMb: 128 }, 0, 10, 7), [a], 'only those unused for the scale-down delay');
});
