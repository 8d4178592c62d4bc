/**
 * The image store's references: tags and pins keep what they name, prune removes the rest
 * (records, blobs, layer directories, stale tmp/ entries) and says how many bytes it freed,
 * layers shared by two images stay while either is kept, rm untags and refuses an image in
 * use, and a real container from the store pins its image from create to delete.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { layerDir, recordPath, tmpDir } from '../../../../worker/engine/image/paths.js';
import { pinImage, readLeases, refsDir } from '../../../../worker/engine/image/pins.js';
import { pruneStore, removeImage } from '../../../../worker/engine/image/prune.js';
import { ImageStore } from '../../../../worker/engine/image/store.js';
import { unpackImage } from '../../../../worker/engine/image/layers.js';
import { importRuntimeImage, setTag } from '../../../../worker/engine/image/import.js';
import { acquireStoreLock } from '../../../../worker/engine/image/store-lock.js';
import type { ImageRecord } from '../../../../worker/engine/image/record.js';
import { selfOwner } from '../../../../worker/engine/state.js';
import { Engine } from '../../../../worker/engine/engine.js';
import { linuxSys, MNT_DETACH } from '../../../../worker/engine/sys/index.js';
import { buildImage } from '../../../../images/build.js';
import { tar } from '../../../support/archives.js';
import { TestStore } from '../../../support/image-store.js';

const cfg = { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Env: ['PATH=/bin', 'MODE=test'], WorkingDir: '/srv', User: '1000:1000' };

/** Three images over a TestStore: A and B share their base layer; C has a layer of its own. */
async function threeImages(store: TestStore): Promise<{ a: ImageRecord; b: ImageRecord; c: ImageRecord }> {
  const base = store.layer(tar([{ name: 'etc/', type: '5', mode: 0o755 }, { name: 'etc/base', data: 'shared base layer '.repeat(100) }]));
  // A read-only directory and a symlink out of the layer: removal must cope with the one and not follow the other.
  const topA = store.layer(tar([{ name: 'ro/', type: '5', mode: 0o555 }, { name: 'ro/file', data: 'a', mode: 0o444 }, { name: 'out', type: '2', linkname: SENTINEL }]));
  const topB = store.layer(tar([{ name: 'b', data: 'b' }]), 'zstd');
  const own = store.layer(tar([{ name: 'c', data: 'c'.repeat(5000) }]), 'tar');
  const a = store.record([base, topA], cfg);
  const b = store.record([base, topB]);
  const c = store.record([own]);
  for (const r of [a, b, c]) await unpackImage(store.imagesDir, r);
  return { a, b, c };
}

/** A host file outside every store: the symlink in image A's layer points at it. */
const outside = new TestStore('faasbox-store-sentinel-');
const SENTINEL = path.join(outside.root, 'sentinel');
writeFileSync(SENTINEL, 'host file outside the store');
after(() => outside.remove());

/** A container dir with state naming owner, and its lease: what Engine.create leaves for a live (or dead) container. */
async function fakeContainer(store: TestStore, id: string, record: ImageRecord, alive = true, withDigest = true): Promise<void> {
  const dir = path.join(store.stateDir, 'containers', id);
  mkdirSync(dir, { recursive: true });
  const owner = alive ? selfOwner() : { pid: 999_999_999, startTime: '0' };
  writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ id, status: 'running', owner, createdAt: new Date().toISOString(), rootfs: '', args: [], cgroup: '' }));
  await pinImage(store.imagesDir, id, withDigest ? { manifestDigest: record.manifestDigest, diffIds: record.diffIds } : { diffIds: record.diffIds });
}

const blobs = (store: TestStore) => readdirSync(path.join(store.imagesDir, 'blobs', 'sha256')).map((h) => `sha256:${h}`);
const allBlobsOf = (r: ImageRecord) => [r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)];

describe('ImageStore', () => {
  const store = new TestStore('faasbox-store-');
  const images = new ImageStore(store.stateDir);
  let recs: Awaited<ReturnType<typeof threeImages>>;
  before(async () => {
    recs = await threeImages(store);
    setTag(store.imagesDir, '127.0.0.1:5000/app:1', recs.a.manifestDigest);
    setTag(store.imagesDir, '127.0.0.1:5000/app:latest', recs.a.manifestDigest);
    setTag(store.imagesDir, 'other/b:2', recs.b.manifestDigest);
  });
  after(() => {
    store.remove();
  });

  test('list: every record with its tags, blob bytes, platform and layer count', () => {
    const list = images.list();
    assert.equal(list.length, 3);
    const a = list.find((i) => i.digest === recs.a.manifestDigest)!;
    assert.deepEqual(a.tags, ['127.0.0.1:5000/app:1', '127.0.0.1:5000/app:latest']);
    assert.equal(a.platform, 'linux/amd64');
    assert.equal(a.layerCount, 2);
    const layerBytes = recs.a.layers.reduce((n, l) => n + l.size, 0);
    assert.ok(a.size > layerBytes, `size ${a.size} counts the manifest and config too, beyond the layers' ${layerBytes}`);
    assert.deepEqual(list.find((i) => i.digest === recs.c.manifestDigest)!.tags, []);
  });

  test('inspect: by tag, by digest and by a 12-digit prefix; the config summary and the layers with their sizes', () => {
    const byTag = images.inspect('127.0.0.1:5000/app:1');
    assert.deepEqual(byTag.config, { entrypoint: ['/bin/app'], cmd: ['--serve'], env: ['PATH=/bin', 'MODE=test'], workingDir: '/srv', user: '1000:1000' });
    assert.deepEqual(
      byTag.layers.map((l) => [l.digest, l.diffId, l.size, l.unpacked]),
      recs.a.layers.map((l, i) => [l.digest, recs.a.diffIds[i], l.size, true]),
    );
    assert.equal(images.inspect(recs.a.manifestDigest).digest, recs.a.manifestDigest);
    assert.equal(images.inspect(recs.a.manifestDigest.slice(7, 19)).digest, recs.a.manifestDigest);
    assert.equal(images.inspect(recs.a.manifestDigest.slice(7)).digest, recs.a.manifestDigest, 'the whole hex without sha256:');
    assert.equal(images.inspect('127.0.0.1:5000/app').digest, recs.a.manifestDigest, 'no tag means :latest');
    assert.throws(() => images.inspect('127.0.0.1:5000/app:nope'), (e: Error & { code?: string }) => e.code === 'IMAGE_NOT_FOUND');
  });
});

describe('prune', () => {
  test('a pinned image survives, an unreferenced one goes with its blobs and layers, shared layers stay, stale tmp/ goes; bytes freed', async () => {
    const store = new TestStore('faasbox-prune-');
    try {
      const images = new ImageStore(store.stateDir);
      const { a, b, c } = await threeImages(store);
      // a: untagged but pinned by a live container; b: tagged; c: nothing.
      await fakeContainer(store, 'live-one', a);
      setTag(store.imagesDir, 'other/b:2', b.manifestDigest);
      mkdirSync(tmpDir(store.imagesDir), { recursive: true });
      const stale = path.join(tmpDir(store.imagesDir), 'layer-deadbeef-xyz');
      mkdirSync(stale);
      writeFileSync(path.join(stale, 'half'), 'x'.repeat(1000));
      const old = (Date.now() - 3_600_000) / 1000;
      utimesSync(stale, old, old);
      const fresh = path.join(tmpDir(store.imagesDir), 'write-fresh');
      writeFileSync(fresh, 'being written');
      const pullLock = path.join(tmpDir(store.imagesDir), 'blob-abc.lock');
      writeFileSync(pullLock, `${process.pid} 1\n`);
      utimesSync(pullLock, old, old);
      assert.equal(images.list().find((i) => i.digest === a.manifestDigest)!.usedBy.join(), 'container live-one');

      const report = await pruneStore(images, { tmpGraceMs: 60_000 });

      assert.deepEqual(report.images, [c.manifestDigest]);
      assert.equal(existsSync(recordPath(store.imagesDir, c.manifestDigest)), false);
      assert.equal(existsSync(layerDir(store.imagesDir, c.diffIds[0]!)), false, "c's layer dir is gone");
      for (const d of allBlobsOf(c)) assert.ok(!blobs(store).includes(d), `c's blob ${d} is gone`);
      for (const r of [a, b]) {
        assert.ok(existsSync(recordPath(store.imagesDir, r.manifestDigest)));
        for (const d of allBlobsOf(r)) assert.ok(blobs(store).includes(d), `blob ${d} of a kept image stays`);
        for (const d of r.diffIds) assert.ok(existsSync(layerDir(store.imagesDir, d)), `layer ${d} of a kept image stays`);
      }
      assert.equal(report.blobs, 3, "c's manifest, config and layer");
      assert.equal(report.layers, 1);
      assert.equal(report.tmp, 1, 'the hour-old tmp entry, not the fresh one');
      assert.equal(existsSync(stale), false);
      assert.equal(existsSync(fresh), true);
      assert.equal(existsSync(pullLock), true, "a puller's lock file is the puller's to remove");
      assert.ok(report.freedBytes >= 5000 * 2 + 1000, `freed ${report.freedBytes}: c's 5000-byte file as blob and as layer, the stale tmp file`);
      assert.ok(!readdirSync(tmpDir(store.imagesDir)).some((n) => n.startsWith('trash-')), 'no trash left behind');

      // The container dies (its owner gone): its lease no longer counts, and a is unreferenced.
      await fakeContainer(store, 'live-one', a, false);
      const second = await pruneStore(images, { tmpGraceMs: 60_000 });
      assert.deepEqual(second.images, [a.manifestDigest]);
      // The base layer is b's too: kept. a's own top layer (read-only dir, symlink out) is gone.
      assert.ok(existsSync(layerDir(store.imagesDir, b.diffIds[0]!)));
      assert.equal(a.diffIds[0], b.diffIds[0]);
      assert.equal(existsSync(layerDir(store.imagesDir, a.diffIds[1]!)), false);
      assert.equal(readFileSync(SENTINEL, 'utf8'), 'host file outside the store', 'the symlink out of the layer was removed, not followed');
      assert.deepEqual(images.list().map((i) => i.digest), [b.manifestDigest]);
    } finally {
      store.remove();
    }
  });

  test('a layer pinned by a container without an image digest (a pool runtime container) stays though its record goes', async () => {
    const store = new TestStore('faasbox-prune-layers-');
    try {
      const images = new ImageStore(store.stateDir);
      const { c } = await threeImages(store);
      await fakeContainer(store, 'pool-1', c, true, false);
      const report = await pruneStore(images, { tmpGraceMs: 0 });
      assert.ok(report.images.includes(c.manifestDigest), 'nothing names the record');
      assert.ok(existsSync(layerDir(store.imagesDir, c.diffIds[0]!)), 'the layer a live container mounts stays');
    } finally {
      store.remove();
    }
  });

  test('a tmp/ leftover with a filesystem still mounted on it is reported, not emptied', async () => {
    const store = new TestStore('faasbox-prune-mount-');
    const sys = await linuxSys();
    const look = path.join(tmpDir(store.imagesDir), 'look-crashed');
    mkdirSync(look, { recursive: true });
    sys.mount('faasbox-test-look', look, 'tmpfs', 0, 'size=1m');
    try {
      writeFileSync(path.join(look, 'inside'), 'on the mounted filesystem');
      const old = (Date.now() - 3_600_000) / 1000;
      utimesSync(look, old, old);
      const report = await pruneStore(new ImageStore(store.stateDir), { tmpGraceMs: 60_000 });
      assert.deepEqual(report.left, [look]);
      assert.equal(readFileSync(path.join(look, 'inside'), 'utf8'), 'on the mounted filesystem');
    } finally {
      sys.umount(look, MNT_DETACH);
      store.remove();
    }
  });

  test('prune waits for a shared holder (a pull, a create) and says UNAVAILABLE past its wait', async () => {
    const store = new TestStore('faasbox-prune-lock-');
    try {
      const images = new ImageStore(store.stateDir);
      const held = await acquireStoreLock(store.imagesDir, 'shared');
      try {
        await assert.rejects(pruneStore(images, { waitMs: 200 }), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE' && /locked/.test(e.message));
      } finally {
        held.release();
      }
      const report = await pruneStore(images, { waitMs: 200 });
      assert.equal(report.images.length, 0);
    } finally {
      store.remove();
    }
  });
});

describe('rm', () => {
  test('untags; the last tag takes the record and its own blobs and layers; shared ones stay', async () => {
    const store = new TestStore('faasbox-rm-');
    try {
      const images = new ImageStore(store.stateDir);
      const { a, b } = await threeImages(store);
      setTag(store.imagesDir, 'app:1', a.manifestDigest);
      setTag(store.imagesDir, 'app:2', a.manifestDigest);
      setTag(store.imagesDir, 'b:1', b.manifestDigest);
      const first = await removeImage(images, 'app:1');
      assert.deepEqual([first.untagged, first.removed, first.freedBytes], [['app:1'], false, 0]);
      assert.equal(images.inspect('app:2').digest, a.manifestDigest);
      const second = await removeImage(images, 'app:2');
      assert.deepEqual([second.untagged, second.removed], [['app:2'], true]);
      assert.ok(second.freedBytes > 0);
      assert.equal(existsSync(recordPath(store.imagesDir, a.manifestDigest)), false);
      assert.equal(existsSync(layerDir(store.imagesDir, a.diffIds[1]!)), false);
      assert.ok(existsSync(layerDir(store.imagesDir, a.diffIds[0]!)), "the base layer is b's too");
      assert.ok(blobs(store).includes(a.layers[0]!.digest));
      await assert.rejects(removeImage(images, 'app:2'), (e: Error & { code?: string }) => e.code === 'IMAGE_NOT_FOUND');
    } finally {
      store.remove();
    }
  });

  test('an image a live container runs from, or a runtime image: IMAGE_IN_USE; --force untags only, prune removes it once unused', async () => {
    const store = new TestStore('faasbox-rm-inuse-');
    try {
      const images = new ImageStore(store.stateDir);
      const { a, b } = await threeImages(store);
      setTag(store.imagesDir, 'app:1', a.manifestDigest);
      setTag(store.imagesDir, 'faasbox/busybox:abc', b.manifestDigest);
      await fakeContainer(store, 'runs-a', a);
      await assert.rejects(removeImage(images, 'app:1'), (e: Error & { code?: string }) => e.code === 'IMAGE_IN_USE' && /container runs-a/.test(e.message));
      await assert.rejects(removeImage(images, 'faasbox/busybox:abc'), (e: Error & { code?: string }) => e.code === 'IMAGE_IN_USE' && /pools/.test(e.message));
      assert.equal(images.inspect('app:1').digest, a.manifestDigest, 'a refused rm changes nothing');
      const forced = await removeImage(images, 'app:1', { force: true });
      assert.deepEqual([forced.untagged, forced.removed], [['app:1'], false]);
      assert.ok(existsSync(recordPath(store.imagesDir, a.manifestDigest)), 'pinned: the record stays');
      assert.deepEqual((await pruneStore(images)).images.includes(a.manifestDigest), false);
      await fakeContainer(store, 'runs-a', a, false);
      assert.ok((await pruneStore(images)).images.includes(a.manifestDigest));
    } finally {
      store.remove();
    }
  });
});

describe('a container from the store pins its image', () => {
  test('the lease exists from create to delete; gc frees a dead one; prune keeps the untagged image meanwhile', async () => {
    const store = new TestStore('faasbox-pin-engine-');
    const engine = await Engine.open({ stateDir: store.stateDir, cgroupRoot: `/faasbox-test-store-${process.pid}` });
    try {
      const images = new ImageStore(store.stateDir);
      const imported = await importRuntimeImage(store.imagesDir, await buildImage('busybox', path.join(store.root, 'built')));
      const c = await engine.create({ rootfs: { layers: imported.layers, image: imported.record.manifestDigest }, process: { args: ['/bin/sleep', '30'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
      try {
        assert.deepEqual(readLeases(store.imagesDir).map((l) => [l.container, l.manifestDigest, l.diffIds]), [[c.id, imported.record.manifestDigest, imported.record.diffIds]]);
        const forced = await removeImage(images, imported.tag, { force: true });
        assert.equal(forced.removed, false);
        const report = await pruneStore(images, { tmpGraceMs: 0 });
        assert.deepEqual(report.images, []);
        assert.ok(existsSync(imported.layers[0]!), 'the layer the container mounts stays');
        c.start();
      } finally {
        await c.delete();
      }
      assert.deepEqual(readdirSync(refsDir(store.imagesDir)), [], 'delete removed the lease');
      // A lease whose container dir is gone (a crash between delete's steps) is gc's.
      writeFileSync(path.join(refsDir(store.imagesDir), 'crashed'), JSON.stringify({ container: 'crashed', diffIds: imported.record.diffIds }));
      const gc = await engine.gc();
      assert.deepEqual(gc.images, ['crashed']);
      const report = await pruneStore(images, { tmpGraceMs: 0 });
      assert.deepEqual(report.images, [imported.record.manifestDigest]);
      assert.equal(existsSync(imported.layers[0]!), false);
      // A layer removed between prepare and create: the create says so and leaves nothing.
      await assert.rejects(
        engine.create({ rootfs: { layers: imported.layers }, process: { args: ['/bin/true'] } }),
        (e: Error & { code?: string }) => e.code === 'IMAGE_NOT_FOUND' && /removed/.test(e.message),
      );
      assert.deepEqual(readdirSync(path.join(store.stateDir, 'containers')), []);
    } finally {
      await engine.close();
      await engine.gc({ all: true });
      engine.cgroups.removeRoot();
      store.remove();
    }
  });
});
