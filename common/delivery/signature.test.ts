import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { SecretBox } from '../secrets.js';
import { callbackSecret, signCallback, verifyCallback } from './signature.js';

const box = new SecretBox(Buffer.alloc(32, 7));

test('each function has its own callback secret, stable under one key, different under another', () => {
  const a = callbackSecret(box, 'orders');
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.equal(callbackSecret(new SecretBox(Buffer.alloc(32, 7)), 'orders'), a);
  assert.notEqual(callbackSecret(box, 'billing'), a);
  assert.notEqual(callbackSecret(new SecretBox(Buffer.alloc(32, 8)), 'orders'), a);
});

test('the signature is HMAC-SHA256 over "timestamp.body", as a receiver computes it with any HMAC library', () => {
  const secret = callbackSecret(box, 'orders');
  const body = '{"invocationId":"x","status":"succeeded"}';
  const want = createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
  assert.equal(signCallback(secret, 1700000000, body), `sha256=${want}`);
});

test('verification refuses another body, another secret, a replayed timestamp and a stale one', () => {
  const secret = callbackSecret(box, 'orders');
  const body = '{"a":1}';
  const now = 1_700_000_000;
  const signature = signCallback(secret, now, body);
  assert.equal(verifyCallback(secret, { signature, timestamp: String(now) }, body, 300, now + 10), true);
  assert.equal(verifyCallback(secret, { signature, timestamp: String(now) }, '{"a":2}', 300, now), false);
  assert.equal(verifyCallback(callbackSecret(box, 'other'), { signature, timestamp: String(now) }, body, 300, now), false);
  // The same signature under a fresh timestamp: the timestamp is signed too.
  assert.equal(verifyCallback(secret, { signature, timestamp: String(now + 400) }, body, 300, now + 400), false);
  assert.equal(verifyCallback(secret, { signature, timestamp: String(now) }, body, 300, now + 301), false);
  assert.equal(verifyCallback(secret, { timestamp: String(now) }, body, 300, now), false);
});
