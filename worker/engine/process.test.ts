import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InitProcess } from './process.js';

/**
 * A stand-in for faasbox-init (spawn path, given as the binary) that writes the given sync
 * lines on fd 4 with a pause between them, then waits for the worker to close the socket.
 */
function withFakeInit(lines: string[], fn: (init: InitProcess) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-fake-init-'));
  const bin = path.join(dir, 'faasbox-init');
  const writes = lines.map((l) => `printf '%s\\n' '${l}' >&4; sleep 0.3`).join('\n');
  writeFileSync(bin, `#!/bin/sh\ncat <&3 >/dev/null\n${writes}\nread -r line <&4\n`);
  chmodSync(bin, 0o755);
  let init: InitProcess | undefined;
  return (async () => {
    init = new InitProcess({ bin, config: Buffer.alloc(0), stdio: ['ignore', 'ignore', 'ignore'], extraFds: [] });
    await fn(init);
  })().finally(() => {
    // A failed assertion must not leave the fake parked on its socket (the file would hang).
    init?.child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
}

test('ready() waits for the pid when "ready" overtakes "pid" (cgroup v2 creation race)', () =>
  withFakeInit(['ready', 'pid 4242'], async (init) => {
    await init.ready();
    assert.equal(init.pid, 4242, 'a ready container has its host pid');
    init.start(); // the fake reads one line, then exits
    const ex = await init.exited;
    assert.equal(ex.exitCode, 0);
  }));

test('ready() also resolves in the usual order, "pid" then "ready"', () =>
  withFakeInit(['pid 4243', 'ready'], async (init) => {
    await init.ready();
    assert.equal(init.pid, 4243);
    init.start();
    await init.exited;
  }));

test('a monitor that ends after "ready" without a pid fails the create instead of handing out pid 0', () =>
  withFakeInit(['ready'], async (init) => {
    const ready = init.ready();
    init.start(); // the fake exits without ever sending "pid"
    await assert.rejects(ready, (err: Error & { code?: string }) => err.code === 'CREATE_FAILED');
    assert.equal(init.pid, 0);
  }));
