import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ImageInvalidError, ImageNotFoundError } from '../../../../common/errors.js';
import { choosePlatform, configDiffIds, hostPlatform, MEDIA, parseManifest, parsePlatform, type IndexManifest } from './manifest.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const manifest = (over: object = {}, layer: object = {}) =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: d('c'), size: 10 }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('1'), size: 5, ...layer }], ...over }));

test('an OCI manifest and a Docker schema 2 one, their layers as the record keeps them', () => {
  const m = parseManifest(manifest(), undefined, 'x');
  assert.equal(m.kind, 'manifest');
  assert.deepEqual(m.kind === 'manifest' && m.layers, [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('1'), size: 5 }]);
  for (const mt of ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar']) {
    const docker = parseManifest(manifest({ mediaType: MEDIA.dockerManifest, config: { mediaType: MEDIA.dockerConfig, digest: d('c'), size: 3 } }, { mediaType: mt }), undefined, 'x');
    assert.equal(docker.mediaType, MEDIA.dockerManifest);
  }
  // No mediaType in the body: the Content-Type says.
  const bare = JSON.parse(manifest().toString()) as Record<string, unknown>;
  delete bare.mediaType;
  assert.equal(parseManifest(Buffer.from(JSON.stringify(bare)), `${MEDIA.dockerManifest}; charset=utf-8`, 'x').mediaType, MEDIA.dockerManifest);
});

test('refused clearly: schema 1, non-distributable and foreign layers, unknown layer types, artifacts, junk', () => {
  const cases: [Buffer, string | undefined, RegExp][] = [
    [Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', fsLayers: [] })), MEDIA.dockerSchema1Signed, /schema 1.*push it again/],
    [manifest({}, { mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip' }), undefined, /non-distributable/],
    [manifest({}, { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip' }), undefined, /non-distributable/],
    [manifest({}, { urls: ['https://elsewhere.example/layer'] }), undefined, /non-distributable/],
    [manifest({}, { mediaType: 'application/vnd.example.weird' }), undefined, /not a tar/],
    [manifest({ config: { mediaType: 'application/vnd.example.artifact', digest: d('c'), size: 1 } }), undefined, /artifact/],
    [manifest({}, { digest: 'sha512:abc' }), undefined, /not a sha256 digest/],
    [manifest({}, { size: -1 }), undefined, /not a byte count/],
    [manifest({ layers: [] }), undefined, /no layers/],
    [Buffer.from('not json'), undefined, /not JSON/],
    [manifest({ mediaType: 'application/vnd.example' }), undefined, /not an image manifest or index/],
  ];
  for (const [bytes, ct, why] of cases) assert.throws(() => parseManifest(bytes, ct, 'x'), (e: Error) => e instanceof ImageInvalidError && why.test(e.message), why.source);
});

const index = (entries: object[]): IndexManifest => {
  const m = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: entries })), undefined, 'x');
  assert.equal(m.kind, 'index');
  return m as IndexManifest;
};
const entry = (c: string, platform: object) => ({ mediaType: MEDIA.ociManifest, digest: d(c), size: 1, platform });

test('the platform from an index: os/arch, the variant when asked, arm64 without a variant is v8', () => {
  const idx = index([entry('a', { os: 'linux', architecture: 'amd64' }), entry('b', { os: 'linux', architecture: 'arm', variant: 'v6' }), entry('c', { os: 'linux', architecture: 'arm', variant: 'v7' }), entry('e', { os: 'linux', architecture: 'arm64' }), entry('f', { os: 'unknown', architecture: 'unknown' })]);
  assert.equal(choosePlatform(idx, { os: 'linux', architecture: 'amd64' }, 'x').digest, d('a'));
  assert.equal(choosePlatform(idx, { os: 'linux', architecture: 'arm', variant: 'v7' }, 'x').digest, d('c'));
  assert.equal(choosePlatform(idx, { os: 'linux', architecture: 'arm', variant: 'v6' }, 'x').digest, d('b'));
  assert.equal(choosePlatform(idx, { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'x').digest, d('e'));
  assert.throws(() => choosePlatform(idx, { os: 'linux', architecture: 'arm', variant: 'v5' }, 'x'), (e: Error) => e instanceof ImageNotFoundError && /linux\/arm\/v5.*linux\/amd64, linux\/arm\/v6/.test(e.message));
  assert.throws(() => choosePlatform(idx, { os: 'windows', architecture: 'amd64' }, 'x'), ImageNotFoundError);
});

test('the host platform and --platform text', () => {
  assert.deepEqual(hostPlatform('x64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(hostPlatform('arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(hostPlatform('arm', '7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  for (const bad of ['linux', 'linux/', 'a/b/c/d', 'Linux/AMD64', '']) assert.equal(parsePlatform(bad), undefined, bad);
});

test('the config\'s diff_ids: one per layer, sha256 each', () => {
  const cfg = (ids: unknown) => Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: ids } }));
  assert.deepEqual(configDiffIds(cfg([d('1'), d('2')]), 2, 'x'), { diffIds: [d('1'), d('2')], platform: { os: 'linux', architecture: 'amd64' } });
  assert.throws(() => configDiffIds(cfg([d('1')]), 2, 'x'), /1 diff_ids for the manifest's 2 layers/);
  assert.throws(() => configDiffIds(cfg(['sha256:short']), 1, 'x'), /no list of sha256/);
  assert.throws(() => configDiffIds(Buffer.from('{'), 1, 'x'), /not JSON/);
});
