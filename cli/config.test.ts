import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from './config.js';

test('the result limit: 6 MiB by default, FAASBOX_MAX_RESULT_BYTES with units, refused when not a size or too small', () => {
  assert.equal(loadConfig(undefined, {}).maxResultBytes, 6 * 1024 * 1024);
  assert.equal(loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: '8m' }).maxResultBytes, 8 * 1024 * 1024);
  assert.equal(loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: '100000' }).maxResultBytes, 100_000);
  assert.throws(() => loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: 'lots' }), /FAASBOX_MAX_RESULT_BYTES must be a size/);
  assert.throws(() => loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: '12' }), /at least 1024/);
});
