import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reportOf } from './report.js';
import type { Pool } from './pool/pool.js';
import type { Slot } from './pool/policy.js';

const slot = (id: string, kind: Slot['kind'], state: Slot['state'], fn?: string): Slot => ({ id, kind, runtime: 'nodejs20', memoryMb: 128, state, uses: 1, lastUsedAt: 0, ...(fn ? { fn } : {}) });
const poolOf = (slots: Slot[]) => ({ slots: () => slots, usedMb: () => 128 * slots.length }) as unknown as Pool;

test('a busy function container is reported warm (placement reads the report later, when it is idle again); a busy stem cell is not', () => {
  const r = reportOf('w1', 'q1', poolOf([
    slot('a', 'function', 'busy', 'f@1'),
    slot('b', 'function', 'idle', 'g@1'),
    slot('c', 'function', 'starting', 'h@1'),
    slot('d', 'function', 'removing', 'f@1'),
    slot('e', 'stem', 'idle'),
    slot('f', 'stem', 'busy'),
  ]), 1024, 1);
  assert.deepEqual(r.warm, { 'f@1': 1, 'g@1': 1 });
  assert.deepEqual(r.stems, { 'nodejs20/128': 1 });
  assert.equal(r.freeMb, 1024 - 6 * 128);
  assert.equal(r.inflight, 1);
});
