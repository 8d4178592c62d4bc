/** The code store on a real directory: unpacking with the shared unpacker, failures that leave nothing, layers removed when discarded and unpinned. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { tar } from '../../test/support/archives.js';
import { DEFAULT_UNPACK_BOUNDS } from '../../common/archive/index.js';
import { createHash } from 'node:crypto';
import { CodeStore } from './code.js';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

const work = mkdtempSync(path.join(tmpdir(), 'faasbox-code-'));
after(() => rmSync(work, { recursive: true, force: true }));
const layers = (dir: string) => readdirSync(path.join(dir, 'layers', 'code'));

test('a single file is written at its nested entry path', async () => {
  const store = new CodeStore(path.join(work, 'a'));
  const bytes = Buffer.from('export default 1');
  const dir = await store.materialize({ digest: sha256(bytes), format: 'file', bytes, filename: 'lib/handler.mjs' });
  assert.equal(readFileSync(path.join(dir, 'lib/handler.mjs'), 'utf8'), 'export default 1');
});

test('an unpack that fails past a bound leaves nothing behind and names no host path', async () => {
  const state = path.join(work, 'b');
  const store = new CodeStore(state, { ...DEFAULT_UNPACK_BOUNDS, maxUnpackedBytes: 4 });
  const bytes = gzipSync(tar([{ name: 'a', data: '1234' }, { name: 'b', data: '5' }]));
  await assert.rejects(store.materialize({ digest: sha256(bytes), format: 'tar.gz', bytes }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CODE_UNPACK_FAILED');
    assert.match(err.message, /member "b": unpacks to more than 4 bytes/);
    assert.ok(!err.message.includes(state), err.message);
    return true;
  });
  assert.deepEqual(layers(state), []);
});

test('a discarded layer goes at once when unused, or at the last unpin', async () => {
  const state = path.join(work, 'c');
  const store = new CodeStore(state);
  const bytes = gzipSync(tar([{ name: 'index.mjs', data: 'x' }]));
  const digest = sha256(bytes);
  const dir = await store.materialize({ digest, format: 'tar.gz', bytes });
  {
    using _a = store.pin(digest);
    const b = store.pin(digest);
    await store.discard(digest);
    assert.ok(existsSync(dir), 'pinned twice: stays');
    b[Symbol.dispose]();
    assert.ok(existsSync(dir), 'pinned once: stays');
  }
  // The last pin's removal is not awaited by its dispose.
  for (let i = 0; i < 100 && existsSync(dir); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(!existsSync(dir));
  assert.equal(store.has(digest), false);
  assert.deepEqual(layers(state), []);
  // Deployed again: unpacked afresh.
  assert.equal(await store.materialize({ digest, format: 'tar.gz', bytes }), dir);
  assert.ok(existsSync(path.join(dir, 'index.mjs')));
  await store.discard(digest);
  assert.ok(!existsSync(dir));
});

test('sweep removes layers whose code is gone, and removals a crash cut short', async () => {
  const state = path.join(work, 'd');
  const store = new CodeStore(state);
  const kept = Buffer.from('kept');
  const gone = Buffer.from('gone');
  const keptDir = await store.materialize({ digest: sha256(kept), format: 'file', bytes: kept });
  const goneDir = await store.materialize({ digest: sha256(gone), format: 'file', bytes: gone });
  mkdirSync(path.join(state, 'layers', 'code', '.gone-cut-short', 'x'), { recursive: true });
  const removed = await store.sweep(async (d) => d === sha256(kept));
  assert.deepEqual(removed, [sha256(gone)]);
  assert.ok(existsSync(keptDir));
  assert.ok(!existsSync(goneDir));
  assert.deepEqual(layers(state), [sha256(kept)]);
});
