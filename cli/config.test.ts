import { test } from 'node:test';
import assert from 'node:assert/strict';
import { destinationsOf, loadConfig } from './config.js';
import { CliError } from './args.js';
import { DEFAULT_FREEZE_GRACE_MS } from '../worker/pool/pool.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_REDIS_FSYNC } from './redis.js';

test('FAASBOX_FREEZE_GRACE_MS sets the freeze grace (0: never frozen); default 50 ms; junk is refused naming the variable', () => {
  assert.equal(loadConfig(undefined, {}).freezeGraceMs, DEFAULT_FREEZE_GRACE_MS);
  assert.equal(DEFAULT_FREEZE_GRACE_MS, 50);
  assert.equal(loadConfig(undefined, { FAASBOX_FREEZE_GRACE_MS: '0' }).freezeGraceMs, 0);
  assert.equal(loadConfig(undefined, { FAASBOX_FREEZE_GRACE_MS: '250' }).freezeGraceMs, 250);
  assert.throws(() => loadConfig(undefined, { FAASBOX_FREEZE_GRACE_MS: 'soon' }), (e: unknown) => e instanceof CliError && /FAASBOX_FREEZE_GRACE_MS/.test(e.message));
  assert.throws(() => loadConfig(undefined, { FAASBOX_FREEZE_GRACE_MS: '-1' }), (e: unknown) => e instanceof CliError && /FAASBOX_FREEZE_GRACE_MS/.test(e.message));
});

test('the result limit: 6 MiB by default, FAASBOX_MAX_RESULT_BYTES with units, refused when not a size or too small', () => {
  assert.equal(loadConfig(undefined, {}).maxResultBytes, 6 * 1024 * 1024);
  assert.equal(loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: '8m' }).maxResultBytes, 8 * 1024 * 1024);
  assert.equal(loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: '100000' }).maxResultBytes, 100_000);
  assert.throws(() => loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: 'lots' }), /FAASBOX_MAX_RESULT_BYTES must be a size/);
  assert.throws(() => loadConfig(undefined, { FAASBOX_MAX_RESULT_BYTES: '12' }), /at least 1024/);
});

test('FAASBOX_USERNS=1 puts every container of the worker in a user namespace; junk is refused naming the variable', () => {
  assert.equal(loadConfig(undefined, {}).userns, undefined);
  assert.equal(loadConfig(undefined, { FAASBOX_USERNS: '1' }).userns, true);
  assert.equal(loadConfig(undefined, { FAASBOX_USERNS: 'off' }).userns, false);
  assert.throws(() => loadConfig(undefined, { FAASBOX_USERNS: 'maybe' }), (e: unknown) => e instanceof CliError && /FAASBOX_USERNS/.test(e.message));
});

test('callback settings: allow/deny lists from FAASBOX_CALLBACK_ALLOW/DENY (comma or space separated), retries with defaults; a bad entry is refused naming the variable', () => {
  const d = loadConfig(undefined, {});
  assert.deepEqual(destinationsOf(d), { policy: { allow: [], deny: [] }, settings: { maxAttempts: 8, delayMs: 1000, timeoutMs: 10_000 } });
  const c = loadConfig(undefined, { FAASBOX_CALLBACK_ALLOW: '127.0.0.1, hooks.example.com', FAASBOX_CALLBACK_DENY: '*.internal.example 10.9.0.0/16', FAASBOX_CALLBACK_MAX_ATTEMPTS: '3', FAASBOX_CALLBACK_DELAY_MS: '250', FAASBOX_CALLBACK_TIMEOUT_MS: '2000' });
  assert.deepEqual(destinationsOf(c), { policy: { allow: ['127.0.0.1', 'hooks.example.com'], deny: ['*.internal.example', '10.9.0.0/16'] }, settings: { maxAttempts: 3, delayMs: 250, timeoutMs: 2000 } });
  assert.throws(() => loadConfig(undefined, { FAASBOX_CALLBACK_DENY: '10.0.0.0/40' }), (e: unknown) => e instanceof CliError && /FAASBOX_CALLBACK_DENY/.test(e.message));
  assert.throws(() => loadConfig(undefined, { FAASBOX_CALLBACK_MAX_ATTEMPTS: 'many' }), (e: unknown) => e instanceof CliError && /FAASBOX_CALLBACK_MAX_ATTEMPTS/.test(e.message));
});

test('FAASBOX_REDIS_FSYNC (or redisFsync in the file): always or everysec; anything else is refused naming the setting', () => {
  assert.equal(loadConfig(undefined, {}).redisFsync, DEFAULT_REDIS_FSYNC);
  assert.equal(loadConfig(undefined, { FAASBOX_REDIS_FSYNC: 'everysec' }).redisFsync, 'everysec');
  assert.equal(loadConfig(undefined, { FAASBOX_REDIS_FSYNC: 'Always' }).redisFsync, 'always');
  assert.throws(() => loadConfig(undefined, { FAASBOX_REDIS_FSYNC: 'sometimes' }), (e: unknown) => e instanceof CliError && /FAASBOX_REDIS_FSYNC/.test(e.message) && /always, everysec/.test(e.message));
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-config-'));
  try {
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ redisFsync: 'everysec' }));
    assert.equal(loadConfig(file, {}).redisFsync, 'everysec');
    writeFileSync(file, JSON.stringify({ redisFsync: 'no' }));
    assert.throws(() => loadConfig(file, {}), (e: unknown) => e instanceof CliError && /redisFsync/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('FAASBOX_DRAIN_GRACE_MS: 30 s by default, whole ms, junk refused naming it', () => {
  assert.equal(loadConfig(undefined, {}).drainGraceMs, 30_000);
  assert.equal(loadConfig(undefined, { FAASBOX_DRAIN_GRACE_MS: '0' }).drainGraceMs, 0);
  assert.equal(loadConfig(undefined, { FAASBOX_DRAIN_GRACE_MS: '5000' }).drainGraceMs, 5000);
  assert.throws(() => loadConfig(undefined, { FAASBOX_DRAIN_GRACE_MS: '1.5' }), (e: unknown) => e instanceof CliError && /FAASBOX_DRAIN_GRACE_MS/.test(e.message));
  assert.throws(() => loadConfig(undefined, { FAASBOX_DRAIN_GRACE_MS: 'later' }), (e: unknown) => e instanceof CliError && /FAASBOX_DRAIN_GRACE_MS/.test(e.message));
});
