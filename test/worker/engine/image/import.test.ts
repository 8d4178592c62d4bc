/**
 * faasbox's runtime images written into the image store as OCI images: the store's
 * layer directory holds exactly what the build made, the tag finds it again, and a
 * second import of the same build writes nothing new.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { buildImage } from '../../../../images/build.js';
import { digestTree } from '../../../../images/digest.js';
import { importRuntimeImage, runtimeTag } from '../../../../worker/engine/image/import.js';
import { blobPath } from '../../../../worker/engine/image/paths.js';
import { readTags, resolveStoredRef } from '../../../../worker/engine/image/refs.js';
import { readImageConfig } from '../../../../worker/engine/image/rootfs.js';
import { sha256, TestStore } from '../../../support/image-store.js';

const store = new TestStore('faasbox-import-');
after(() => store.remove());

test('busybox imported: an OCI manifest, config and tar layer whose unpacked directory is the build, found again by its tag', async () => {
  const built = await buildImage('busybox', path.join(store.root, 'built'));
  const t0 = performance.now();
  const first = await importRuntimeImage(store.imagesDir, built, ['PATH=/bin']);
  const ms = performance.now() - t0;
  assert.equal(first.tag, runtimeTag(built));
  assert.equal(readTags(store.imagesDir)[first.tag], first.record.manifestDigest);
  const manifest = readFileSync(blobPath(store.imagesDir, first.record.manifestDigest));
  assert.equal(sha256(manifest), first.record.manifestDigest);
  const m = JSON.parse(manifest.toString()) as { mediaType: string; layers: { digest: string; mediaType: string }[] };
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(m.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar');
  assert.deepEqual((readImageConfig(store.imagesDir, first.record) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids, first.record.diffIds);
  assert.equal(first.layers.length, 1);
  assert.equal(digestTree(first.layers[0]!).digest, built.digest, 'the store\'s layer directory holds what the build made');
  console.log(`import of busybox (${built.manifest.bytes} bytes, ${built.manifest.files} files): ${ms.toFixed(0)} ms`);

  const blobMtime = statSync(blobPath(store.imagesDir, first.record.layers[0]!.digest)).mtimeMs;
  const again = await importRuntimeImage(store.imagesDir, built, ['PATH=/bin']);
  assert.deepEqual(again, first);
  assert.equal(statSync(blobPath(store.imagesDir, first.record.layers[0]!.digest)).mtimeMs, blobMtime, 'nothing rewritten');
  assert.equal(resolveStoredRef(store.imagesDir, first.tag).manifestDigest, first.record.manifestDigest);
});
