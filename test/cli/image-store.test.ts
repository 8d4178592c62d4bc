/**
 * `faasbox image ls | inspect | rm | prune` on a store made by hand: tables and JSON, and
 * the exit codes a script relies on (cli/image-exit.ts: 0 ok, 2 usage, 3 no such image,
 * 6 in use, 1 other).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTag } from '../../worker/engine/image/import.js';
import { layerDir } from '../../worker/engine/image/paths.js';
import { pinImage } from '../../worker/engine/image/pins.js';
import { unpackImage } from '../../worker/engine/image/layers.js';
import { selfOwner } from '../../worker/engine/state.js';
import { tar } from '../support/archives.js';
import { TestStore } from '../support/image-store.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/faasbox.js');
const store = new TestStore('faasbox-cli-images-');
after(() => store.remove());

function faasbox(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, FAASBOX_STATE_DIR: store.stateDir }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const base = store.layer(tar([{ name: 'etc/', type: '5', mode: 0o755 }, { name: 'etc/os', data: 'base' }]));
const app = store.record([base, store.layer(tar([{ name: 'app', data: 'x'.repeat(3000) }]))], { Cmd: ['/app'], Env: ['A=1'], User: '10' });
const other = store.record([base]);
setTag(store.imagesDir, 'registry.test/app:1', app.manifestDigest);
setTag(store.imagesDir, 'registry.test/other:1', other.manifestDigest);

test('ls: a table with the tags and short digests; --json an array', async () => {
  await unpackImage(store.imagesDir, app);
  const r = faasbox(['image', 'ls']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^REFERENCE +DIGEST +SIZE +PLATFORM +PULLED +IN USE\n/);
  assert.match(r.stdout, new RegExp(`registry\\.test/app:1 +${app.manifestDigest.slice(7, 19)} +[\\d.]+ kB +linux/amd64`));
  const j = faasbox(['image', 'ls', '--json']);
  const list = JSON.parse(j.stdout) as { digest: string; tags: string[] }[];
  assert.deepEqual(list.map((i) => i.tags).sort(), [['registry.test/app:1'], ['registry.test/other:1']]);
  assert.equal(faasbox(['image', 'ls', 'extra']).code, 2);
});

test('inspect: the config and the layers; exit 3 for an image the store lacks', () => {
  const r = faasbox(['image', 'inspect', 'registry.test/app:1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Cmd +\["\/app"\]/);
  assert.match(r.stdout, /User +10/);
  assert.match(r.stdout, /layers \(2, bottom first\)/);
  const j = JSON.parse(faasbox(['image', 'inspect', app.manifestDigest, '--json']).stdout) as { config: { env: string[] }; layers: { unpacked: boolean }[] };
  assert.deepEqual(j.config.env, ['A=1']);
  assert.deepEqual(j.layers.map((l) => l.unpacked), [true, true]);
  const missing = faasbox(['image', 'inspect', 'registry.test/nope:1']);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /not in the store.*\[IMAGE_NOT_FOUND\]/);
  const json = faasbox(['image', 'inspect', 'registry.test/nope:1', '--json']);
  assert.equal((JSON.parse(json.stderr) as { error: { code: string } }).error.code, 'IMAGE_NOT_FOUND');
  assert.equal(faasbox(['image', 'inspect']).code, 2);
});

test('rm: exit 6 for an image in use, --force untags only; prune then frees it when its container is gone', async () => {
  const id = 'cli-holder';
  const dir = path.join(store.stateDir, 'containers', id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ id, status: 'running', owner: selfOwner(), createdAt: '', rootfs: '', args: [], cgroup: '' }));
  await pinImage(store.imagesDir, id, { manifestDigest: app.manifestDigest, diffIds: app.diffIds });
  const refused = faasbox(['image', 'rm', 'registry.test/app:1']);
  assert.equal(refused.code, 6);
  assert.match(refused.stderr, /in use by container cli-holder.*\[IMAGE_IN_USE\]/);
  const forced = faasbox(['image', 'rm', 'registry.test/app:1', '--force', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(JSON.parse(forced.stdout), { digest: app.manifestDigest, untagged: ['registry.test/app:1'], removed: false, freedBytes: 0 });
  const kept = JSON.parse(faasbox(['image', 'prune', '--json']).stdout) as { images: string[] };
  assert.deepEqual(kept.images, [], 'pinned by a live container');
  writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ id, status: 'running', owner: { pid: 999_999_999, startTime: '0' }, createdAt: '', rootfs: '', args: [], cgroup: '' }));
  const pruned = faasbox(['image', 'prune']);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stdout, new RegExp(`removed ${app.manifestDigest}\\npruned 1 images, 3 blobs, 1 layers, 0 tmp entries; freed [\\d.]+ kB`));
  assert.equal(existsSync(layerDir(store.imagesDir, app.diffIds[1]!)), false);
  const gone = faasbox(['image', 'rm', 'registry.test/app:1']);
  assert.equal(gone.code, 3);
  const rmOther = faasbox(['image', 'rm', 'registry.test/other:1']);
  assert.equal(rmOther.code, 0, rmOther.stderr);
  assert.match(rmOther.stdout, /untagged registry\.test\/other:1\nremoved sha256:[0-9a-f]{64} \(freed [\d.]+ kB\)/);
});
