import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostOf, isLoopback, isTransient, Transport } from './transport.js';

test('plain HTTP: loopback always, insecure registries when named, nothing else', () => {
  const t = new Transport({ insecure: ['reg.internal:5000', 'Other.Internal'] });
  try {
    for (const h of ['127.0.0.1:5000', '127.8.9.1', 'localhost', 'localhost:80', '[::1]:5000', 'reg.internal:5000', 'other.internal:1234']) assert.equal(t.plainAllowed(h), true, h);
    for (const h of ['reg.internal:5001', 'registry.example.com', '128.0.0.1', 'localhost.evil.example', '10.0.0.1:5000']) assert.equal(t.plainAllowed(h), false, h);
    assert.doesNotThrow(() => t.checkScheme(new URL('http://127.0.0.1:9/x')));
    assert.doesNotThrow(() => t.checkScheme(new URL('https://anything.example/x')));
    assert.throws(() => t.checkScheme(new URL('http://storage.example/blob')), /plain HTTP only to loopback/);
    assert.throws(() => t.checkScheme(new URL('ftp://127.0.0.1/x')), /refusing ftp/);
  } finally {
    t.close();
  }
});

test('host and loopback parsing; what counts as transient', () => {
  assert.equal(hostOf('[::1]:5000'), '[::1]');
  assert.equal(hostOf('r.io:443'), 'r.io');
  assert.equal(hostOf('r.io'), 'r.io');
  assert.equal(isLoopback('127.0.0.1:1'), true);
  assert.equal(isLoopback('1.127.0.0.1'), false);
  const e = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  for (const err of [e('ECONNRESET'), e('ETIMEDOUT'), e('ECONNREFUSED'), e('', 'socket hang up'), e('', 'aborted')]) assert.equal(isTransient(err), true, String(err));
  for (const err of [e('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), e('ENOENT'), new TypeError('bad')]) assert.equal(isTransient(err), false, String(err));
});
