/** The storage limits: every one has an environment variable, and a bad value is named. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_STORAGE_LIMITS, STORAGE_LIMITS_ENV, storageLimits } from './limits.js';

test('every limit has exactly one environment variable', () => {
  assert.deepEqual(Object.values(STORAGE_LIMITS_ENV).sort(), Object.keys(DEFAULT_STORAGE_LIMITS).sort());
});

test('limits are positive integers; a bad one is refused by name', () => {
  assert.deepEqual(storageLimits({ recordsPerFunction: 5 }), { ...DEFAULT_STORAGE_LIMITS, recordsPerFunction: 5 });
  assert.throws(() => storageLimits({ versionsPerFunction: 0 }), /versionsPerFunction must be a positive integer/);
  assert.throws(() => storageLimits({ queuedBytesPerFunction: 1.5 }), /queuedBytesPerFunction/);
});
