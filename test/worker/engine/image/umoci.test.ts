/**
 * Images made by a third-party tool (Debian's umoci), not by faasbox: its OCI layout's
 * blobs copied into the store as the puller would, then unpacked and run through the
 * engine. The container sees exactly what the layer stack says: a file deleted by a
 * whiteout is gone, an opaque directory hides the lower one, and the image's config
 * (umoci config) is the process's default.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unpackImage } from '../../../../worker/engine/image/layers.js';
import { blobPath, recordPath } from '../../../../worker/engine/image/paths.js';
import type { ImageRecord } from '../../../../worker/engine/image/record.js';
import { prepareImage } from '../../../../worker/engine/image/rootfs.js';
import { linuxSys } from '../../../../worker/engine/sys/index.js';
import { runToEnd, testEngine, type TestEngine } from '../../../support/engine.js';
import { TestStore } from '../../../support/image-store.js';
import { writeLayerFiles } from '../../../support/registry-images.js';

const haveUmoci = spawnSync('umoci', ['--version']).status === 0;
const skip = haveUmoci ? false : 'umoci is not installed (scripts/setup.sh installs it from Debian)';

const store = new TestStore('faasbox-umoci-');
after(() => store.remove());

const umoci = (...args: string[]) => execFileSync('umoci', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/** Copies the layout's image `tag` into the store as the puller would: blobs by digest, then a record. */
function importLayout(layout: string, tag: string): ImageRecord {
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[] };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(desc, `tag ${tag} in the layout`);
  const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const manifest = JSON.parse(readFileSync(blob(desc.digest), 'utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string; size: number }[] };
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  for (const d of [desc.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) copyFileSync(blob(d), blobPath(store.imagesDir, d));
  const record: ImageRecord = {
    manifestDigest: desc.digest,
    mediaType: desc.mediaType,
    configDigest: manifest.config.digest,
    layers: manifest.layers.map(({ digest, mediaType, size }) => ({ digest, mediaType, size })),
    diffIds: config.rootfs.diff_ids,
    repo: 'umoci/test',
    pulledAt: new Date().toISOString(),
  };
  writeFileSync(recordPath(store.imagesDir, desc.digest), JSON.stringify(record));
  return record;
}

describe('images made by umoci', { skip }, () => {
  let te: TestEngine;
  let record: ImageRecord;
  before(async () => {
    te = await testEngine('umoci');
    const layout = path.join(store.root, 'layout');
    const image = `${layout}:v1`;
    const files = path.join(store.root, 'files');
    writeLayerFiles(files);
    umoci('init', '--layout', layout);
    umoci('new', '--image', image);
    umoci('insert', '--image', image, te.layers[0]!, '/'); // busybox
    umoci('insert', '--image', image, path.join(files, 'data'), '/data');
    umoci('insert', '--image', image, path.join(files, 'opq-lower'), '/opq');
    umoci('insert', '--image', image, path.join(files, 'passwd'), '/etc/passwd');
    umoci('insert', '--image', image, '--whiteout', '/data/gone');
    umoci('insert', '--image', image, '--opaque', path.join(files, 'opq-upper'), '/opq');
    umoci('config', '--image', image, '--config.user', 'svc', '--config.workingdir', '/data', '--config.env', 'FROM=umoci', '--config.entrypoint', '/bin/sh', '--config.cmd', '-c', '--config.cmd', 'echo "$(id -u):$(id -g) $PWD $FROM"');
    record = importLayout(layout, 'v1');
  });
  after(async () => {
    await te?.cleanup();
  });

  test('the container sees the layer stack: whiteout gone, opaque directory hides the lower one', async () => {
    const layers = await unpackImage(store.imagesDir, record);
    assert.equal(layers.length, record.layers.length);
    const run = await runToEnd(te.engine, {
      rootfs: { layers },
      process: { args: ['/bin/sh', '-c', 'ls -A /data; echo --; ls -A /opq; cat /data/stays'] },
    });
    assert.equal(run.result.exitCode, 0, run.stderr);
    assert.equal(run.stdout, 'stays\n--\nupper\nkept\n');
  });

  test('umoci config is honoured: Entrypoint, Cmd, Env, WorkingDir, User from the image\'s own /etc/passwd', async () => {
    const prepared = await prepareImage(await linuxSys(), store.imagesDir, record);
    assert.deepEqual([prepared.process.uid, prepared.process.gid, prepared.process.cwd], [2000, 2001, '/data']);
    const run = await runToEnd(te.engine, { rootfs: { layers: prepared.layers }, process: { args: prepared.process.args, env: prepared.process.env, cwd: prepared.process.cwd, uid: prepared.process.uid, gid: prepared.process.gid } });
    assert.equal(run.result.exitCode, 0, run.stderr);
    assert.equal(run.stdout, '2000:2001 /data umoci\n');
  });
});
