import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from './config.js';
import { loadSecretBox, secretKeyFile } from './secret-key.js';
import { SecretBox } from '../common/secrets.js';

test('the state dir key: created once (0600) by up, reused after, absent for a service that may not create it', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-key-'));
  try {
    assert.equal(loadSecretBox({ stateDir: dir }, { create: false }), undefined);
    const first = loadSecretBox({ stateDir: dir }, { create: true })!;
    assert.equal(statSync(secretKeyFile(dir)).mode & 0o777, 0o600);
    const sealed = first.seal('v', 'f');
    const text = readFileSync(secretKeyFile(dir), 'utf8');
    assert.equal(loadSecretBox({ stateDir: dir }, { create: true })!.open(sealed, 'f'), 'v');
    assert.equal(loadSecretBox({ stateDir: dir }, { create: false })!.open(sealed, 'f'), 'v');
    assert.equal(readFileSync(secretKeyFile(dir), 'utf8'), text, 'the key was rewritten');
    // FAASBOX_SECRET_KEY wins over the file.
    const given = SecretBox.generateKey();
    const fromEnv = loadSecretBox({ stateDir: dir, secretKey: given.toString('hex') }, { create: true })!;
    assert.throws(() => fromEnv.open(sealed, 'f'), { code: 'SECRET_KEY_INVALID' });
    assert.throws(() => loadSecretBox({ stateDir: dir, secretKey: 'too-short' }, { create: true }), /FAASBOX_SECRET_KEY is not a 32-byte key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the new settings come from the environment', () => {
  const cfg = loadConfig(undefined, {
    FAASBOX_SECRET_KEY: 'k',
    FAASBOX_METRICS_TOKEN: 't',
    FAASBOX_METRICS_PUBLIC: '1',
    FAASBOX_HEADERS_TIMEOUT_MS: '1500',
    FAASBOX_REQUEST_TIMEOUT_MS: '3000',
    FAASBOX_MAX_JSON_DEPTH: '32',
  });
  assert.deepEqual(
    [cfg.secretKey, cfg.metricsToken, cfg.metricsPublic, cfg.headersTimeoutMs, cfg.requestTimeoutMs, cfg.maxJsonDepth],
    ['k', 't', true, 1500, 3000, 32],
  );
  const defaults = loadConfig(undefined, {});
  assert.deepEqual([defaults.metricsPublic, defaults.headersTimeoutMs, defaults.requestTimeoutMs, defaults.maxJsonDepth], [false, 10_000, 60_000, 64]);
  assert.throws(() => loadConfig(undefined, { FAASBOX_REQUEST_TIMEOUT_MS: '0' }), /FAASBOX_REQUEST_TIMEOUT_MS/);
});
