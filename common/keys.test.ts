import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as keys from './keys.js';

test('a version key is name@version, and every version of a function shares its prefix', () => {
  assert.equal(keys.versionKey('hello', 'abc123'), 'hello@abc123');
  assert.ok(keys.versionKey('hello', 'abc123').startsWith(keys.versionKeyPrefix('hello')));
  // A function whose name starts with another's is not taken for one of its versions.
  assert.ok(!keys.versionKey('hello-2', 'v').startsWith(keys.versionKeyPrefix('hello')));
});

test('a shape key is runtime/memoryMb, and /bridge for bridge stem cells', () => {
  assert.equal(keys.shapeKey('nodejs20', 128), 'nodejs20/128');
  assert.notEqual(keys.shapeKey('nodejs20', 128), keys.shapeKey('nodejs20', 256));
  assert.equal(keys.shapeKey('nodejs20', 128, 'bridge'), 'nodejs20/128/bridge', 'a bridge stem cell is a shape of its own');
  assert.equal(keys.shapeKey('nodejs20', 128, 'none'), 'nodejs20/128');
});

test('the Redis keys sit under the prefix with the layout the Lua scripts mirror', () => {
  const p = 'faas';
  assert.equal(keys.functionsKey(p), 'faas:functions');
  assert.equal(keys.functionKey(p, 'f'), 'faas:fn:f');
  assert.equal(keys.functionVersionsKey(p, 'f'), 'faas:fn:f:versions');
  // invocations.ts's advanceScript builds `prefix .. ':fn:' .. name .. ':records'`.
  assert.equal(keys.recordsIndexKey(p, 'f'), 'faas:fn:f:records');
  assert.deepEqual(keys.queuedBytesKeys(p, 'f'), ['faas:fn:f:queued', 'faas:fn:f:queued-until']);
  // registry.ts's delete script builds `p .. ':ver:' .. name .. ':' .. v`, `:code:` and `:coderefs:`.
  assert.equal(keys.versionRecordKey(p, 'f', 'v1'), 'faas:ver:f:v1');
  assert.equal(keys.codeKey(p, 'sha256:x'), 'faas:code:sha256:x');
  assert.equal(keys.codeRefsKey(p, 'sha256:x'), 'faas:coderefs:sha256:x');
  // invocations.ts's advanceScript builds `prefix .. ':inv:' .. id`.
  assert.equal(keys.invocationKey(p, 'i1'), 'faas:inv:i1');
  assert.equal(keys.concurrencyKey(p, 'f'), 'faas:concurrency:f');
  assert.equal(keys.workersKey(p), 'faas:workers');
  assert.equal(keys.demandKey(p), 'faas:worker-demand');
  assert.equal(keys.poolTargetsKey(p), 'faas:pool-targets');
  assert.equal(keys.orphanQueuesKey(p), 'faas:orphan-queues');
  assert.equal(keys.functionEventsChannel(p), 'faas:function-events');
});

test('no two builders give the same key for the same arguments', () => {
  const p = 'x';
  const all = [
    keys.functionsKey(p),
    keys.functionKey(p, 'a'),
    keys.functionVersionsKey(p, 'a'),
    keys.recordsIndexKey(p, 'a'),
    ...keys.queuedBytesKeys(p, 'a'),
    keys.versionRecordKey(p, 'a', 'b'),
    keys.codeKey(p, 'a'),
    keys.codeRefsKey(p, 'a'),
    keys.invocationKey(p, 'a'),
    keys.concurrencyKey(p, 'a'),
    keys.workersKey(p),
    keys.demandKey(p),
    keys.poolTargetsKey(p),
    keys.orphanQueuesKey(p),
    keys.functionEventsChannel(p),
  ];
  assert.equal(new Set(all).size, all.length);
});
