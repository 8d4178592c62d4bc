import { test } from 'node:test';
import assert from 'node:assert/strict';
import { markerPrefixAtEnd } from './instance.js';

test('output is held back only where it could be the start of the end marker', () => {
  const marker = '\u0000END abc\n';
  assert.equal(markerPrefixAtEnd('step 1\n', marker), 0);
  assert.equal(markerPrefixAtEnd('step 1\n\u0000', marker), 1);
  assert.equal(markerPrefixAtEnd('step 1\n\u0000END a', marker), 6);
  assert.equal(markerPrefixAtEnd('\u0000END abc', marker), 8, 'all but the last character');
  assert.equal(markerPrefixAtEnd('', marker), 0);
  assert.equal(markerPrefixAtEnd('\u0000EN', marker), 3);
  assert.equal(markerPrefixAtEnd('\u0000ENX', marker), 0);
});
