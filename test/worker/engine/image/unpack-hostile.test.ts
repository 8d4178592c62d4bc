/**
 * Hostile layers crafted byte by byte: every one fails with a clear error or is
 * neutralised (lands inside its layer), nothing of a failed layer is kept, and a sentinel
 * file on the host outside the store is unchanged after each.
 */
import assert from 'node:assert/strict';
import { createWriteStream, existsSync, readdirSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { FaasboxError } from '../../../../common/errors.js';
import { DEFAULT_LAYER_BOUNDS, unpackImage, type LayerBounds } from '../../../../worker/engine/image/layers.js';
import { tar, tarHeader, type TarMember } from '../../../support/archives.js';
import { MEDIA, sha256, TestStore } from '../../../support/image-store.js';

const store = new TestStore('faasbox-hostile-');
// The host's side: a directory and a file outside the store that no layer may touch.
const host = path.join(store.root, 'host');
const sentinel = path.join(host, 'sentinel');
const SENTINEL = 'the host file, untouched\n';
let sentinelStat: { mtimeMs: number; ino: number; nlink: number };

before(() => {
  mkdirSync(host);
  writeFileSync(sentinel, SENTINEL);
  const st = statSync(sentinel);
  sentinelStat = { mtimeMs: st.mtimeMs, ino: st.ino, nlink: st.nlink };
});
after(() => store.remove());

function hostUnchanged(): void {
  assert.equal(readFileSync(sentinel, 'utf8'), SENTINEL);
  const st = statSync(sentinel);
  assert.deepEqual({ mtimeMs: st.mtimeMs, ino: st.ino, nlink: st.nlink }, sentinelStat, 'the sentinel is the same inode, unmodified, with no new hard link');
  assert.deepEqual(readdirSync(host), ['sentinel']);
}


async function unpack(members: TarMember[], bounds: LayerBounds = DEFAULT_LAYER_BOUNDS): Promise<string> {
  const layer = store.layer(tar(members));
  const [dir] = await unpackImage(store.imagesDir, store.record([layer]), bounds);
  return dir!;
}

/** Unpacking fails with code; nothing of the layer is kept, the host is unchanged. Returns the error. */
async function refused(members: TarMember[] | Buffer, code: string, bounds: LayerBounds = DEFAULT_LAYER_BOUNDS): Promise<FaasboxError> {
  const before = store.leftovers().layers;
  const layer = Buffer.isBuffer(members) ? store.layer(members) : store.layer(tar(members));
  let error: unknown;
  try {
    await unpackImage(store.imagesDir, store.record([layer]), bounds);
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof FaasboxError, `a FaasboxError, got ${error}`);
  assert.equal(error.code, code, error.message);
  assert.deepEqual(store.leftovers(), { layers: before, tmp: [] }, 'nothing of the failed layer is kept');
  hostUnchanged();
  return error;
}

describe('hostile layers', () => {
  test('".." in a name is refused, whatever its place', async () => {
    for (const name of ['../escape', 'a/../../escape', `${'../'.repeat(20)}${sentinel.slice(1)}`]) {
      const err = await refused([{ name: 'a/', type: '5', mode: 0o755 }, { name, data: 'pwned' }], 'IMAGE_INVALID');
      assert.match(err.message, /path traversal/);
    }
  });

  test('an absolute name is read relative to the layer root', async () => {
    const dir = await unpack([{ name: sentinel, data: 'pwned' }]);
    assert.equal(readFileSync(path.join(dir, sentinel), 'utf8'), 'pwned');
    hostUnchanged();
  });

  test('a symlink named "." or "/" is refused (CVE-2021-29136), and nothing is written through it', async () => {
    for (const name of ['.', '/', './']) {
      const err = await refused([{ name, type: '2', linkname: host }, { name: 'sentinel', data: 'pwned' }], 'IMAGE_INVALID');
      assert.match(err.message, /names the layer root/);
    }
  });

  test('a symlinked parent directory then a file through it: resolved inside the layer', async () => {
    // To a host directory by absolute path: inside the layer that path does not exist.
    const err = await refused([{ name: 'evil', type: '2', linkname: host }, { name: 'evil/sentinel', data: 'pwned' }], 'IMAGE_INVALID');
    assert.match(err.message, /a link to nothing inside the layer/);
    // Climbing with "..": the kernel stops at the layer root (RESOLVE_IN_ROOT), the file lands inside.
    const dir = await unpack([
      { name: 'etc/', type: '5', mode: 0o755 },
      { name: 'up', type: '2', linkname: '../../../../../../../../..' },
      { name: 'abs', type: '2', linkname: '/etc' },
      { name: 'up/etc/one', data: 'one' },
      { name: 'abs/two', data: 'two' },
    ]);
    assert.equal(readFileSync(path.join(dir, 'etc/one'), 'utf8'), 'one');
    assert.equal(readFileSync(path.join(dir, 'etc/two'), 'utf8'), 'two');
    assert.equal(readlinkSync(path.join(dir, 'up')), '../../../../../../../../..', 'the symlink itself is kept as the layer says');
    hostUnchanged();
  });

  test('a hard link to a host file is refused', async () => {
    for (const linkname of [sentinel, `${'../'.repeat(20)}${sentinel.slice(1)}`, 'missing']) {
      const err = await refused([{ name: 'link', type: '1', linkname }], 'IMAGE_INVALID');
      assert.match(err.message, /path traversal|not in the layer/);
    }
    // Through a symlinked directory: the kernel resolves it inside the layer, where no such file is.
    const err = await refused([{ name: 'h', type: '2', linkname: host }, { name: 'link', type: '1', linkname: 'h/sentinel' }], 'IMAGE_INVALID');
    assert.match(err.message, /not in the layer/);
  });

  test('device nodes are dropped; a FIFO and the rest of the layer are kept', async () => {
    const dir = await unpack([
      { name: 'null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'sda', type: '4', devmajor: 8, devminor: 0, mode: 0o660 },
      { name: 'zero', type: '3', devmajor: 0, devminor: 0 },
      { name: 'pipe', type: '6', mode: 0o640 },
      { name: 'kept', data: 'kept' },
    ]);
    assert.equal(existsSync(path.join(dir, 'null')), false);
    assert.equal(existsSync(path.join(dir, 'sda')), false);
    assert.equal(existsSync(path.join(dir, 'zero')), false, 'a 0/0 device in the tar is not a whiteout (.wh. names are)');
    assert.ok(lstatSync(path.join(dir, 'pipe')).isFIFO());
    assert.equal(readFileSync(path.join(dir, 'kept'), 'utf8'), 'kept');
  });

  test('a later member replaces an earlier one of the same name', async () => {
    const dir = await unpack([
      { name: 'x', data: 'first' },
      { name: 'x', type: '2', linkname: sentinel },
      { name: 'x', data: 'third' },
      { name: 'd/', type: '5', mode: 0o755 },
      { name: 'd/inner', data: 'inner' },
      { name: 'd', data: 'now a file' },
      { name: 'l', type: '2', linkname: sentinel },
      { name: 'l/', type: '5', mode: 0o755 },
    ]);
    assert.equal(readFileSync(path.join(dir, 'x'), 'utf8'), 'third');
    assert.equal(readFileSync(path.join(dir, 'd'), 'utf8'), 'now a file');
    assert.ok(lstatSync(path.join(dir, 'l')).isDirectory(), 'the symlink was replaced, not followed');
    hostUnchanged();
  });

  test('1 GB of zeros in one file (about 1 MB of gzip) past the bound: IMAGE_TOO_LARGE before a byte is written', async () => {
    const blob = path.join(store.root, 'bomb.tar.gz');
    const GB = 1024 * 1024 * 1024;
    const gz = createGzip();
    const out = gz.pipe(createWriteStream(blob));
    gz.write(tarHeader({ name: 'zeros', size: GB }));
    const MB = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 1024; i++) if (!gz.write(MB)) await once(gz, 'drain');
    gz.end(Buffer.alloc(1024));
    await once(out, 'finish');
    const compressed = readFileSync(blob);
    assert.ok(compressed.length < 2 * 1024 * 1024, `${compressed.length} bytes of gzip`);
    // The diff_id is not needed: the bound stops the unpack long before the end.
    const digest = store.blob(compressed);
    const layer = { descriptor: { digest, mediaType: MEDIA.gzip, size: compressed.length }, diffId: sha256('unused') };
    const rss = process.memoryUsage().rss;
    const bounds = { ...DEFAULT_LAYER_BOUNDS, maxUnpackedBytes: 100 * 1024 * 1024 };
    const err = await unpackImage(store.imagesDir, store.record([layer]), bounds).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FaasboxError && err.code === 'IMAGE_TOO_LARGE', String(err));
    assert.match(err.message, /maxUnpackedBytes/);
    assert.deepEqual(store.leftovers().tmp, []);
    hostUnchanged();
    console.log(`bomb: ${compressed.length} bytes of gzip for 1 GiB; rss grew ${((process.memoryUsage().rss - rss) / 1e6).toFixed(1)} MB`);
  });

  test('1 GB of zeros as the tar stream itself (an empty archive, then padding): the stream bound stops it', async () => {
    const blob = path.join(store.root, 'pad.tar.gz');
    const gz = createGzip();
    const out = gz.pipe(createWriteStream(blob));
    const MB = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 1024; i++) if (!gz.write(MB)) await once(gz, 'drain');
    gz.end();
    await once(out, 'finish');
    const compressed = readFileSync(blob);
    const layer = { descriptor: { digest: store.blob(compressed), mediaType: MEDIA.gzip, size: compressed.length }, diffId: sha256('unused') };
    const bounds = { ...DEFAULT_LAYER_BOUNDS, maxUnpackedBytes: 100 * 1024 * 1024 };
    const err = await unpackImage(store.imagesDir, store.record([layer]), bounds).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FaasboxError && err.code === 'IMAGE_TOO_LARGE', String(err));
    assert.deepEqual(store.leftovers().tmp, []);
  });

  test('100k entries past the entry bound: IMAGE_TOO_LARGE, nothing kept', async () => {
    const members: TarMember[] = [];
    for (let i = 0; i < 100_000; i++) members.push({ name: `d${i % 100}/f${i}`, data: '' });
    const err = await refused(members, 'IMAGE_TOO_LARGE', { ...DEFAULT_LAYER_BOUNDS, maxEntries: 10_000 });
    assert.match(err.message, /maxEntries = 10000/);
  });

  test('a path past maxPathBytes: IMAGE_TOO_LARGE', async () => {
    const err = await refused([{ name: 'x'.repeat(90) }, { name: `${'a/'.repeat(40)}f` }], 'IMAGE_TOO_LARGE', { ...DEFAULT_LAYER_BOUNDS, maxPathBytes: 64 });
    assert.match(err.message, /maxPathBytes/);
  });

  test('an uncompressed stream that is not the diff_id: DIGEST_MISMATCH, nothing kept', async () => {
    const layer = store.layer(tar([{ name: 'f', data: 'x' }]));
    const before = store.leftovers().layers;
    const record = store.record([{ ...layer, diffId: sha256('another layer') }]);
    const err = await unpackImage(store.imagesDir, record).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FaasboxError && err.code === 'DIGEST_MISMATCH', String(err));
    assert.match(err.message, new RegExp(layer.diffId));
    assert.deepEqual(store.leftovers(), { layers: before, tmp: [] });
  });

  test('junk that is not gzip, and a truncated tar: IMAGE_INVALID', async () => {
    const junk = Buffer.from('\x1f\x8bnot really gzip at all', 'latin1');
    const digest = store.blob(junk);
    const record = store.record([{ descriptor: { digest, mediaType: MEDIA.gzip, size: junk.length }, diffId: sha256(junk) }]);
    const err = await unpackImage(store.imagesDir, record).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FaasboxError && err.code === 'IMAGE_INVALID', String(err));
    const cut = tar([{ name: 'f', data: 'y'.repeat(5000) }]).subarray(0, 2048);
    await refused(cut, 'IMAGE_INVALID');
  });
});
