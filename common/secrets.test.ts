import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SecretBox, parseSecretKey } from './secrets.js';

test('seal and open round-trip; every seal has its own IV; the tag is checked', () => {
  const box = new SecretBox(SecretBox.generateKey());
  const a = box.seal('{"A":"v"}', 'fn');
  const b = box.seal('{"A":"v"}', 'fn');
  assert.notEqual(a, b, 'the same plaintext sealed twice looks the same');
  assert.match(a, /^gcm1:[A-Za-z0-9+/]+=*$/);
  assert.equal(box.open(a, 'fn'), '{"A":"v"}');
  const raw = Buffer.from(a.slice(5), 'base64');
  raw[raw.length - 1]! ^= 1;
  assert.throws(() => box.open(`gcm1:${raw.toString('base64')}`, 'fn'), { code: 'SECRET_KEY_INVALID' });
  assert.throws(() => box.open(a, 'other-fn'), { code: 'SECRET_KEY_INVALID' });
  assert.throws(() => new SecretBox(SecretBox.generateKey()).open(a, 'fn'), { code: 'SECRET_KEY_INVALID', message: /not the one they were stored with/ });
  assert.throws(() => box.open('gcm1:AAAA', 'fn'), { code: 'SECRET_KEY_INVALID', message: /malformed/ });
});

test('keys: 64 hex digits or base64 of 32 bytes, anything else refused by name', () => {
  const key = SecretBox.generateKey();
  assert.deepEqual(parseSecretKey(key.toString('hex'), 'X'), key);
  assert.deepEqual(parseSecretKey(` ${key.toString('base64')}\n`, 'X'), key);
  assert.deepEqual(parseSecretKey(key.toString('base64url'), 'X'), key);
  for (const bad of ['', 'short', key.toString('hex').slice(2), Buffer.alloc(16).toString('base64'), 'not base64 at all!']) {
    assert.throws(() => parseSecretKey(bad, 'FAASBOX_SECRET_KEY'), { code: 'SECRET_KEY_INVALID', message: /FAASBOX_SECRET_KEY is not a 32-byte key/ });
  }
});
