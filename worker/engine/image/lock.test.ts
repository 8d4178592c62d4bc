import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readTags } from './refs.js';
import { acquireLock, acquireLockSync, lockHolderAlive, processStart, tryLock } from './lock.js';
import { sweepTmp } from './pull.js';

/** The pid of a process that has exited (so is certainly not holding anything). */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

test('a live holder keeps the lock; release frees it; a dead or reused pid is stale and taken over', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-lock-'));
  try {
    const file = path.join(dir, 'x.lock');
    const lock = await acquireLock(file);
    assert.match(readFileSync(file, 'utf8'), new RegExp(`^${process.pid} \\d+\\n$`));
    assert.equal(tryLock(file), false, 'held by this live process');
    lock.release();
    assert.equal(existsSync(file), false);

    writeFileSync(file, `${deadPid()} 12345\n`);
    assert.equal(lockHolderAlive(file), false);
    assert.equal(tryLock(file), true, 'a dead holder: taken over');
    rmSync(file);
    // Our own pid with another start time: the pid was reused by another process.
    writeFileSync(file, `${process.pid} ${Number(processStart(process.pid)) + 1}\n`);
    assert.equal(lockHolderAlive(file), false);
    const sync = acquireLockSync(file, 1000);
    sync.release();
    // Empty (between create and write): alive while young.
    writeFileSync(file, '');
    assert.equal(lockHolderAlive(file), true);
    utimesSync(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    assert.equal(lockHolderAlive(file), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tmp/ after a crash: old junk and dead locks go, a young .part and live locks stay', () => {
  const images = mkdtempSync(path.join(tmpdir(), 'faasbox-sweep-'));
  try {
    const tmp = path.join(images, 'tmp');
    mkdirSync(tmp);
    const old = new Date(Date.now() - 7 * 3600_000);
    const hex = 'a'.repeat(64);
    const put = (name: string, dirOrFile: 'dir' | 'file', mtime?: Date) => {
      const p = path.join(tmp, name);
      if (dirOrFile === 'dir') mkdirSync(p);
      else writeFileSync(p, 'x');
      if (mtime) utimesSync(p, mtime, mtime);
    };
    put('layer-old-123', 'dir', old);
    put('layer-young-123', 'dir');
    put('write-old', 'file', old);
    put(`blob-${hex}.part`, 'file');
    writeFileSync(path.join(tmp, `blob-${hex}.lock`), `${deadPid()} 1\n`);
    put(`blob-${'b'.repeat(64)}.part`, 'file', old);
    writeFileSync(path.join(tmp, `blob-${'b'.repeat(64)}.lock`), `${process.pid} ${processStart(process.pid)}\n`);
    const removed = sweepTmp(images).sort();
    assert.deepEqual(removed, [`blob-${hex}.lock`, 'layer-old-123', 'write-old']);
    assert.ok(existsSync(path.join(tmp, `blob-${hex}.part`)), 'young partial kept for a resume');
    assert.ok(existsSync(path.join(tmp, `blob-${'b'.repeat(64)}.part`)), 'an old partial whose holder lives is kept');
  } finally {
    rmSync(images, { recursive: true, force: true });
  }
});

test('tags written by several processes at once: none lost (the tags file is rewritten under its lock)', async () => {
  const images = mkdtempSync(path.join(tmpdir(), 'faasbox-tags-'));
  try {
    const mod = path.join(path.dirname(fileURLToPath(import.meta.url)), 'import.js');
    const script = 'const { setTag } = await import(process.argv[1]); for (let i = 0; i < 25; i++) setTag(process.argv[2], `p${process.argv[3]}/t:${i}`, "sha256:" + "a".repeat(64));';
    const children = [0, 1, 2, 3].map((n) => spawn(process.execPath, ['--input-type=module', '-e', script, mod, images, String(n)], { stdio: ['ignore', 'ignore', 'pipe'] }));
    const codes = await Promise.all(children.map((c) => new Promise<number | null>((resolve) => c.once('close', resolve))));
    assert.deepEqual(codes, [0, 0, 0, 0]);
    assert.equal(Object.keys(readTags(images)).length, 100);
  } finally {
    rmSync(images, { recursive: true, force: true });
  }
});
