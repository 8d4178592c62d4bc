/**
 * The puller against a real registry (Debian's docker-registry, distribution 2.8) holding
 * images made by umoci and pushed by skopeo: an anonymous pull whose container sees exactly
 * the layer stack, Docker schema 2 media types, an index's platforms, an image sharing all
 * but its top layer, a corrupted blob in the registry's storage, a missing tag.
 */
import assert from 'node:assert/strict';
import { existsSync, openSync, readdirSync, readFileSync, writeSync, closeSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FaasboxError } from '../../../../common/errors.js';
import { blobPath, layerDir, recordPath } from '../../../../worker/engine/image/paths.js';
import { pullImage } from '../../../../worker/engine/image/pull.js';
import type { PullProgress } from '../../../../worker/engine/image/pull-types.js';
import { readTags, resolveStoredRef } from '../../../../worker/engine/image/refs.js';
import { prepareImage } from '../../../../worker/engine/image/rootfs.js';
import { linuxSys } from '../../../../worker/engine/sys/index.js';
import { runToEnd, testEngine, type TestEngine } from '../../../support/engine.js';
import { TestStore } from '../../../support/image-store.js';
import { buildTestImages, EXPECTED_LS, LS_CMD, pushIndex } from '../../../support/registry-images.js';
import { pushRecompressed, registrySkip, skopeoPush, startRegistry, type OciLayout, type TestRegistry } from '../../../support/registry.js';

const skip = registrySkip();

const codeOf = async (p: Promise<unknown>): Promise<{ code: string; message: string }> => {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FaasboxError, `a FaasboxError, got ${(err as Error).stack}`);
    return { code: err.code, message: err.message };
  }
  assert.fail('the pull succeeded');
};

describe('pulling from a real registry', { skip }, () => {
  let te: TestEngine;
  let reg: TestRegistry;
  let oci: OciLayout;
  let store: TestStore;
  let index: { index: string; native: string; arm: string };
  let list: { index: string; native: string; arm: string };

  before(async () => {
    te = await testEngine('pull');
    store = new TestStore('faasbox-pull-');
    oci = buildTestImages(path.join(store.root, 'oci'), te.layers[0]!);
    reg = await startRegistry();
    await skopeoPush(oci.image('v1'), `${reg.host}/test/app:v1`);
    await skopeoPush(oci.image('v2'), `${reg.host}/test/app:v2`);
    await skopeoPush(oci.image('v1'), `${reg.host}/test/docker:v1`, { format: 'v2s2' });
    await skopeoPush(oci.image('v1'), `${reg.host}/test/corrupt:v1`);
    await pushRecompressed(oci.image('v1'), store.root, reg.host, 'test/zstd:v1', 'zstd');
    await pushRecompressed(oci.image('v1'), store.root, reg.host, 'test/plain:v1', 'none');
    index = await pushIndex(oci, reg.host, 'test/multi');
    list = await pushIndex(oci, reg.host, 'test/list', true);
  });
  after(async () => {
    await reg?.stop();
    await te?.cleanup();
    store?.remove();
  });

  test('anonymous pull: verified, stored, tagged; the container sees the layer stack and the config', async () => {
    const events: PullProgress[] = [];
    const r = await pullImage(store.imagesDir, `${reg.host}/test/app:v1`, { onProgress: (p) => events.push(p) });
    const want = oci.manifest('v1');
    assert.equal(r.manifestDigest, want.digest);
    assert.equal(r.ref, `${reg.host}/test/app:v1`);
    assert.equal(r.record.layers.length, 6);
    assert.equal(r.transferredBytes, want.manifest.config.size + want.manifest.layers.reduce((n, l) => n + l.size, 0));
    assert.equal(readTags(store.imagesDir)[`${reg.host}/test/app:v1`], r.manifestDigest);
    assert.ok(existsSync(recordPath(store.imagesDir, r.manifestDigest)));
    for (const l of r.record.layers) assert.ok(existsSync(blobPath(store.imagesDir, l.digest)), l.digest);
    for (const d of r.record.diffIds) assert.ok(existsSync(layerDir(store.imagesDir, d)), d);
    assert.deepEqual(readdirSync(path.join(store.imagesDir, 'tmp')).filter((n) => !n.endsWith('.lock')), [], 'nothing left in tmp/');
    assert.equal(events[0]!.phase, 'resolving');
    assert.equal(events.at(-1)!.phase, 'done');
    assert.ok(events.some((e) => e.phase === 'downloading' && e.layer && e.layerTotal), 'per-layer progress');

    const prepared = await prepareImage(await linuxSys(), store.imagesDir, r.record);
    const run = await runToEnd(te.engine, { rootfs: { layers: prepared.layers }, process: { args: ['/bin/sh', '-c', LS_CMD] } });
    assert.equal(run.result.exitCode, 0, run.stderr);
    assert.equal(run.stdout, EXPECTED_LS, 'whiteouted file gone, opaque dir hides the lower one');
    const def = await runToEnd(te.engine, { rootfs: { layers: prepared.layers }, process: { args: prepared.process.args, env: prepared.process.env, cwd: prepared.process.cwd, uid: prepared.process.uid, gid: prepared.process.gid } });
    assert.equal(def.stdout, '2000:2001 /data umoci\n');
  });

  test('a second pull of the same image transfers nothing; an image sharing all but its top layer transfers only that layer', async () => {
    const again = await pullImage(store.imagesDir, `${reg.host}/test/app:v1`);
    assert.equal(again.transferredBytes, 0);
    const v2 = oci.manifest('v2');
    const r = await pullImage(store.imagesDir, `${reg.host}/test/app:v2`);
    assert.equal(r.manifestDigest, v2.digest);
    assert.equal(r.transferredBytes, v2.manifest.layers.at(-1)!.size + v2.manifest.config.size);
  });

  test('Docker schema 2 media types (skopeo --format v2s2)', async () => {
    const r = await pullImage(store.imagesDir, `${reg.host}/test/docker:v1`);
    assert.equal(r.record.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.ok(r.record.layers.every((l) => l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip'));
    const prepared = await prepareImage(await linuxSys(), store.imagesDir, r.record);
    const run = await runToEnd(te.engine, { rootfs: { layers: prepared.layers }, process: { args: ['/bin/sh', '-c', LS_CMD] } });
    assert.equal(run.stdout, EXPECTED_LS, run.stderr);
  });

  for (const [name, mediaType] of [
    ['zstd', 'application/vnd.oci.image.layer.v1.tar+zstd'],
    ['plain', 'application/vnd.oci.image.layer.v1.tar'],
  ] as const) {
    test(`${name} layers (${mediaType})`, async () => {
      const s = new TestStore(`faasbox-pull-${name}-`);
      try {
        const r = await pullImage(s.imagesDir, `${reg.host}/test/${name}:v1`);
        assert.ok(r.record.layers.every((l) => l.mediaType === mediaType), JSON.stringify(r.record.layers.map((l) => l.mediaType)));
        const prepared = await prepareImage(await linuxSys(), s.imagesDir, r.record);
        const run = await runToEnd(te.engine, { rootfs: { layers: prepared.layers }, process: { args: ['/bin/sh', '-c', LS_CMD] } });
        assert.equal(run.stdout, EXPECTED_LS, run.stderr);
      } finally {
        s.remove();
      }
    });
  }

  test('an index: the host platform by default, another with platform', async () => {
    const native = await pullImage(store.imagesDir, `${reg.host}/test/multi:multi`);
    assert.equal(native.manifestDigest, index.native);
    assert.ok(existsSync(blobPath(store.imagesDir, index.index)), 'the index kept as a blob');
    const arm = await pullImage(store.imagesDir, `${reg.host}/test/multi:multi`, { platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(arm.manifestDigest, index.arm);
    assert.equal(arm.record.platform?.architecture, 'arm64');
    assert.equal(readFileSync(path.join(layerDir(store.imagesDir, arm.record.diffIds[0]!), 'arm-marker'), 'utf8'), 'arm64 image\n');
    // The tag names what was pulled last.
    assert.equal(readTags(store.imagesDir)[`${reg.host}/test/multi:multi`], index.arm);
    const single = await codeOf(pullImage(store.imagesDir, `${reg.host}/test/multi:arm`, { platform: { os: 'linux', architecture: 's390x' } }));
    assert.equal(single.code, 'IMAGE_NOT_FOUND');
    assert.match(single.message, /is linux\/arm64 only, not the linux\/s390x asked for/);
    const none = await codeOf(pullImage(store.imagesDir, `${reg.host}/test/multi:multi`, { platform: { os: 'linux', architecture: 's390x' } }));
    assert.equal(none.code, 'IMAGE_NOT_FOUND');
    assert.match(none.message, /linux\/s390x.*linux\/arm64\/v8/);
  });

  test('pinned to an index digest: the platform chosen is found again by the same pinned reference', async () => {
    const pinned = `${reg.host}/test/multi@${index.index}`;
    const r = await pullImage(store.imagesDir, pinned, { platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(r.manifestDigest, index.arm);
    assert.equal(resolveStoredRef(store.imagesDir, pinned).manifestDigest, index.arm);
  });

  test('a Docker manifest list over schema 2 manifests: the host platform, or another', async () => {
    const native = await pullImage(store.imagesDir, `${reg.host}/test/list:multi`);
    assert.equal(native.manifestDigest, list.native);
    assert.equal(native.record.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    const arm = await pullImage(store.imagesDir, `${reg.host}/test/list:multi`, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    assert.equal(arm.manifestDigest, list.arm);
  });

  test('pinned by digest: the digest is fetched and verified, no tag is moved', async () => {
    const store2 = new TestStore('faasbox-pull-pin-');
    try {
      const r = await pullImage(store2.imagesDir, `${reg.host}/test/app:nonexistent@${index.native}`);
      assert.equal(r.manifestDigest, index.native);
      assert.deepEqual(readTags(store2.imagesDir), {});
    } finally {
      store2.remove();
    }
  });

  test('a tag the registry does not have: IMAGE_NOT_FOUND', async () => {
    const e = await codeOf(pullImage(store.imagesDir, `${reg.host}/test/app:nope`));
    assert.equal(e.code, 'IMAGE_NOT_FOUND');
    assert.match(e.message, /not found in the registry/);
  });

  test('a blob corrupted in the registry storage: DIGEST_MISMATCH naming it, nothing of it in the store', async () => {
    const store2 = new TestStore('faasbox-pull-corrupt-');
    try {
      const m = oci.manifest('v1').manifest;
      const victim = m.layers[1]!.digest; // /data: only this image's copy is corrupted (shared storage: every repo's)
      const file = reg.blobData(victim);
      const size = statSync(file).size;
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from('corrupted by the test'), 0, 21, Math.floor(size / 2));
      closeSync(fd);
      const e = await codeOf(pullImage(store2.imagesDir, `${reg.host}/test/corrupt:v1`, { retries: 0 }));
      assert.equal(e.code, 'DIGEST_MISMATCH');
      assert.ok(e.message.includes(victim), e.message);
      assert.equal(existsSync(blobPath(store2.imagesDir, victim)), false);
      assert.deepEqual(readdirSync(path.join(store2.imagesDir, 'images', 'sha256')), [], 'no record');
      assert.deepEqual(readTags(store2.imagesDir), {}, 'no tag');
      assert.deepEqual(readdirSync(path.join(store2.imagesDir, 'tmp')).filter((n) => !n.endsWith('.lock')), [], 'no partial blob');
      const config = JSON.parse(readFileSync(path.join(oci.layout, 'blobs/sha256', m.config.digest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } };
      assert.equal(existsSync(layerDir(store2.imagesDir, config.rootfs.diff_ids[1]!)), false, 'its layer not unpacked');
    } finally {
      store2.remove();
    }
  });
});
