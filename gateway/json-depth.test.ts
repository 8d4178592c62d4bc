import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nestsDeeperThan } from './json-depth.js';

const depth = (n: number) => Buffer.from('['.repeat(n) + ']'.repeat(n));

test('counts nesting of arrays and objects, up to and past the limit', () => {
  assert.equal(nestsDeeperThan(depth(64), 64), false);
  assert.equal(nestsDeeperThan(depth(65), 64), true);
  assert.equal(nestsDeeperThan(Buffer.from('{"a":{"b":{"c":[1]}}}'), 4), false);
  assert.equal(nestsDeeperThan(Buffer.from('{"a":{"b":{"c":[1]}}}'), 3), true);
  // Siblings do not add up.
  assert.equal(nestsDeeperThan(Buffer.from(JSON.stringify(Array.from({ length: 1000 }, () => [[1]]))), 3), false);
});

test('brackets inside strings, escaped quotes and multi-byte text do not count', () => {
  assert.equal(nestsDeeperThan(Buffer.from(JSON.stringify({ s: '[[[[[[[[{{{{{{' })), 1), false);
  assert.equal(nestsDeeperThan(Buffer.from(JSON.stringify({ s: 'a\\"[[[[[[ "[[[[' })), 1), false);
  assert.equal(nestsDeeperThan(Buffer.from(JSON.stringify({ s: 'ø[[[[[日本\\\\' , t: [[1]] })), 3), false);
  assert.equal(nestsDeeperThan(Buffer.from(JSON.stringify({ s: 'ø\\\\', t: [[[1]]] })), 3), true);
  assert.equal(nestsDeeperThan(Buffer.from('["\\\\\\"[[[[", [[1]]]'), 3), false);
  assert.equal(nestsDeeperThan(Buffer.from('["\\\\", [[[1]]]]'), 3), true);
  // Unterminated: not this scanner's to judge (JSON.parse answers INVALID_JSON).
  assert.equal(nestsDeeperThan(Buffer.from('["[[[[[[[[[['), 3), false);
});

test('5,000 levels are found without recursion, and a 6 MB flat body in one pass', () => {
  assert.equal(nestsDeeperThan(depth(5000), 64), true);
  assert.equal(nestsDeeperThan(depth(1_000_000), 64), true);
  const flat = Buffer.from(JSON.stringify({ data: 'x'.repeat(6 * 1024 * 1024) }));
  const t0 = performance.now();
  assert.equal(nestsDeeperThan(flat, 64), false);
  const t1 = performance.now();
  JSON.parse(flat.toString());
  // Reported, not asserted: the cost on the invoke path for the largest body, beside JSON.parse's.
  console.log(`# scanned ${flat.length} bytes in ${(t1 - t0).toFixed(1)} ms (JSON.parse: ${(performance.now() - t1).toFixed(1)} ms)`);
  const numbers = Buffer.from(JSON.stringify(Array.from({ length: 500_000 }, (_, i) => i)));
  const t2 = performance.now();
  assert.equal(nestsDeeperThan(numbers, 64), false);
  console.log(`# scanned ${numbers.length} bytes of numbers in ${(performance.now() - t2).toFixed(1)} ms`);
});
