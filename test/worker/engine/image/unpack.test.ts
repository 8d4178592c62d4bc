/**
 * Layers unpacked faithfully: owners, modes (setuid), mtimes and the allowed xattrs kept,
 * whiteouts as OverlayFS reads them, gzip/zstd/plain tar, each layer unpacked once, and a
 * container over the layer stack (the engine's OverlayFS) seeing what the stack says.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unpackImage } from '../../../../worker/engine/image/layers.js';
import type { LayerReport } from '../../../../worker/engine/image/unpack/index.js';
import { lgetxattr } from '../../../../worker/engine/sys/at.js';
import { paxMember, tar, type TarMember } from '../../../support/archives.js';
import { runToEnd, testEngine, type TestEngine } from '../../../support/engine.js';
import { TestStore } from '../../../support/image-store.js';

const store = new TestStore('faasbox-unpack-');
after(() => store.remove());

// struct vfs_cap_data, revision 2: effective flag, permitted = CAP_NET_BIND_SERVICE (bit 10).
const CAP = Buffer.alloc(20);
CAP.writeUInt32LE(0x02000001, 0);
CAP.writeUInt32LE(1 << 10, 4);

async function unpackOne(members: TarMember[], compression: 'gzip' | 'zstd' | 'tar' = 'gzip'): Promise<string> {
  const [dir] = await unpackImage(store.imagesDir, store.record([store.layer(tar(members), compression)]));
  return dir!;
}

describe('unpacking a layer', () => {
  test('owners, modes (setuid included), mtimes and user.*/security.capability xattrs are kept; other xattrs dropped', async () => {
    const dir = await unpackOne([
      { name: './', type: '5', mode: 0o751, uid: 0, gid: 0, mtime: 1_500_000_000 },
      { name: 'bin/', type: '5', mode: 0o755, uid: 0, gid: 0, mtime: 1_400_000_000 },
      paxMember({ 'SCHILY.xattr.user.note': 'hello', 'SCHILY.xattr.security.capability': CAP, 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.security.selinux': 'x' }),
      { name: 'bin/suid', data: '#!/bin/sh\n', mode: 0o4755, uid: 1234, gid: 5678, mtime: 1_000_000_000 },
      { name: 'bin/link', type: '2', linkname: '/bin/suid', uid: 42, gid: 43, mtime: 1_100_000_000 },
      { name: 'bin/hard', type: '1', linkname: 'bin/suid' },
      { name: 'tmp/', type: '5', mode: 0o1777, mtime: 1_200_000_000 },
    ]);
    const suid = statSync(path.join(dir, 'bin/suid'));
    assert.equal(suid.mode & 0o7777, 0o4755);
    assert.deepEqual([suid.uid, suid.gid, suid.mtimeMs / 1000], [1234, 5678, 1_000_000_000]);
    assert.equal(suid.nlink, 2, 'bin/hard is a hard link to it');
    assert.equal(lgetxattr(path.join(dir, 'bin/suid'), 'user.note')?.toString(), 'hello');
    assert.deepEqual(lgetxattr(path.join(dir, 'bin/suid'), 'security.capability'), CAP);
    assert.equal(lgetxattr(path.join(dir, 'bin/suid'), 'trusted.overlay.opaque'), undefined, 'a layer cannot set overlay xattrs itself');
    const link = lstatSync(path.join(dir, 'bin/link'));
    assert.deepEqual([readlinkSync(path.join(dir, 'bin/link')), link.uid, link.gid, link.mtimeMs / 1000], ['/bin/suid', 42, 43, 1_100_000_000]);
    assert.equal(statSync(path.join(dir, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(statSync(path.join(dir, 'bin')).mtimeMs / 1000, 1_400_000_000, 'directory mtimes are set after their children');
    assert.equal(statSync(dir).mode & 0o777, 0o751, 'the "./" member sets the layer root');
  });

  test('.wh.NAME becomes a 0/0 character device and .wh..wh..opq an opaque directory, wherever it sits', async () => {
    const dir = await unpackOne([
      { name: 'etc/.wh.gone', data: '' },
      { name: 'keep/kept-here', data: 'mine' },
      { name: 'keep/.wh..wh..opq', data: '' },
      { name: 'late/.wh..wh..opq', data: '' },
      { name: 'late/after', data: 'after' },
      { name: 'both', data: 'this layer has it' },
      { name: '.wh.both', data: '' },
      { name: '.wh..wh.plnk', type: '5' },
    ]);
    const wh = lstatSync(path.join(dir, 'etc/gone'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(lgetxattr(path.join(dir, 'keep'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(lgetxattr(path.join(dir, 'late'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(readFileSync(path.join(dir, 'keep/kept-here'), 'utf8'), 'mine');
    assert.equal(readFileSync(path.join(dir, 'late/after'), 'utf8'), 'after');
    assert.equal(readFileSync(path.join(dir, 'both'), 'utf8'), 'this layer has it', 'a whiteout hides the layers below, not its own');
    assert.equal(existsSync(path.join(dir, '.wh..wh.plnk')), false, 'aufs metadata is not content');
  });

  test('zstd and plain tar layers unpack alike', async () => {
    for (const c of ['zstd', 'tar'] as const) {
      const dir = await unpackOne([{ name: `f-${c}`, data: c.repeat(1000) }], c);
      assert.equal(readFileSync(path.join(dir, `f-${c}`), 'utf8'), c.repeat(1000));
    }
  });

  test('a zstd layer that is not zstd: IMAGE_INVALID', async () => {
    const junk = Buffer.from('definitely not zstd');
    const digest = store.blob(junk);
    const record = store.record([{ descriptor: { digest, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', size: junk.length }, diffId: `sha256:${'0'.repeat(64)}` }]);
    await assert.rejects(unpackImage(store.imagesDir, record), (err: Error & { code?: string }) => err.code === 'IMAGE_INVALID' && /zstd/.test(err.message));
    assert.deepEqual(store.leftovers().tmp, []);
  });

  test('two unpacks of one layer at once unpack it once; a third reuses the directory', async () => {
    const layer = store.layer(tar([{ name: 'shared', data: 'once' }]));
    const record = store.record([layer]);
    const reports: LayerReport[] = [];
    const [a, b] = await Promise.all([unpackImage(store.imagesDir, record, undefined, (r) => reports.push(r)), unpackImage(store.imagesDir, record, undefined, (r) => reports.push(r))]);
    assert.deepEqual(a, b);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.diffId, layer.diffId);
    await unpackImage(store.imagesDir, record, undefined, (r) => reports.push(r));
    assert.equal(reports.length, 1);
    assert.equal(path.basename(a![0]!), layer.diffId.slice('sha256:'.length));
  });
});

describe('a container over an unpacked layer stack', () => {
  let te: TestEngine;
  before(async () => {
    te = await testEngine('unpack');
  });
  after(async () => {
    await te.cleanup();
  });

  test('sees what the stack says: a whited-out file is gone, an opaque directory hides the lower one', async () => {
    // The bottom layer is faasbox's busybox image as GNU tar writes it; two layers above it.
    const base = execFileSync('tar', ['--format=pax', '--xattrs', '-cf', '-', '-C', te.layers[0]!, '.'], { maxBuffer: 1 << 28 });
    const middle = tar([
      { name: 'data/', type: '5', mode: 0o755 },
      { name: 'data/gone', data: 'deleted above' },
      { name: 'data/stays', data: 'kept' },
      { name: 'opq/', type: '5', mode: 0o755 },
      { name: 'opq/lower', data: 'hidden above' },
    ]);
    const top = tar([
      { name: 'data/.wh.gone', data: '' },
      { name: 'opq/upper', data: 'visible' },
      { name: 'opq/.wh..wh..opq', data: '' },
      { name: 'bin/.wh.vi', data: '' },
    ]);
    const record = store.record([store.layer(base), store.layer(middle, 'zstd'), store.layer(top)]);
    const layers = await unpackImage(store.imagesDir, record);
    const run = await runToEnd(te.engine, {
      rootfs: { layers },
      process: { args: ['/bin/sh', '-c', 'ls -A /data; echo --; ls -A /opq; echo --; test -e /bin/vi && echo vi || echo no-vi; cat /data/stays'] },
    });
    assert.equal(run.result.exitCode, 0, run.stderr);
    assert.equal(run.stdout, 'stays\n--\nupper\n--\nno-vi\nkept');
  });
});
