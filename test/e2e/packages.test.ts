/**
 * Code packages through the whole stack: hostile ones are refused at deploy and leave
 * nothing on the worker's disk, accepted ones run with safe modes, nested entries work,
 * and a deleted function's unpacked code goes from the worker's disk.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { FunctionRegistry } from '../../common/registry.js';
import { parseDeploy } from '../../common/function-spec.js';
import { manyFilesTarGz, tar, zeroTarGz, zeroZip, zip } from '../support/archives.js';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';

let s: TestStack;
let layers: string;
before(async () => {
  s = await startStack('packages');
  layers = path.join(s.worker.engine.stateDir, 'layers', 'code');
});
after(async () => {
  await s.close();
});

const b64 = (b: Buffer) => b.toString('base64');
/** Bytes and inodes under a directory, as du counts them. */
function usage(dir: string): { bytes: number; inodes: number } {
  const bytes = Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
  const inodes = Number(execFileSync('du', ['-s', '--inodes', dir]).toString().split('\t')[0]);
  return { bytes, inodes };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('bombs, 100k files, device nodes and broken packages are refused at deploy; nothing is written under the state dir', async () => {
  const layersBefore = readdirSync(layers);
  const before = usage(layers);
  const state = usage(s.worker.engine.stateDir);
  const cases: [string, Buffer, number][] = [
    ['zip of 1 GiB of zeros', await zeroZip(1024 ** 3), 413],
    ['tar.gz of 1 GiB of zeros', await zeroTarGz(1024 ** 3), 413],
    ['tar.gz of 100k files', manyFilesTarGz(100_000), 413],
    ['char device /dev/mem 1:1', gzipSync(tar([{ name: 'index.mjs', data: 'export default () => 1' }, { name: 'mem', type: '3' }])), 400],
    ['block device', gzipSync(tar([{ name: 'index.mjs', data: '' }, { name: 'disk', type: '4' }])), 400],
    ['FIFO', gzipSync(tar([{ name: 'index.mjs', data: '' }, { name: 'fifo', type: '6' }])), 400],
    ['traversal', gzipSync(tar([{ name: 'index.mjs', data: '' }, { name: '../../escape', data: 'x' }])), 400],
    ['zip symlink out', zip([{ name: 'index.mjs', data: '' }, { name: 'out', data: '../../../../', unixMode: 0o120777 }]), 400],
    ['junk with a gzip header', Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(64, 0x41)]), 400],
  ];
  for (const [what, pkg, status] of cases) {
    const d = await s.deploy('bad', { runtime: 'nodejs20', package: b64(pkg), entry: 'index.mjs' });
    assert.equal(d.status, status, `${what}: ${d.text}`);
    assert.doesNotMatch(d.json.error.message, new RegExp(`${s.worker.engine.stateDir}|/tmp/|tar -|busybox`), what);
    const r = await s.invoke('bad');
    assert.equal(r.status, 404, `${what}: nothing was deployed`);
  }
  await sleep(500); // a pre-pull, had any deploy been announced, would have started by now
  assert.deepEqual(readdirSync(layers), layersBefore);
  const after = usage(layers);
  assert.deepEqual(after, before, 'the code layers dir is untouched');
  const stateAfter = usage(s.worker.engine.stateDir);
  console.log(`state dir: ${state.bytes} -> ${stateAfter.bytes} bytes, ${state.inodes} -> ${stateAfter.inodes} inodes (main wrote 1 GiB per bomb, 100k inodes for the many-files tar)`);
  assert.ok(stateAfter.bytes - state.bytes < 64 * 1024 * 1024, `state dir grew by ${stateAfter.bytes - state.bytes} bytes`);
  assert.ok(stateAfter.inodes - state.inodes < 5000, `state dir grew by ${stateAfter.inodes - state.inodes} inodes`);
});

test('an accepted package runs with setuid, setgid and sticky bits dropped and execute bits kept', async () => {
  const handler = `import { statSync } from 'node:fs';
export const run = () => Object.fromEntries(['tool', 'plain', 'bin'].map((f) => [f, statSync('/var/task/' + f).mode & 0o7777]));`;
  const pkg = gzipSync(
    tar([
      { name: 'bin/', type: '5', mode: 0o3777 },
      { name: 'tool', data: '#!/bin/sh\n', mode: 0o6755 },
      { name: 'plain', data: 'x', mode: 0o1666 },
      { name: 'lib/handler.mjs', data: handler, mode: 0o4644 },
    ]),
  );
  const d = await s.deploy('modes', { runtime: 'nodejs20', package: b64(pkg), entry: 'lib/handler.mjs', handler: 'run' });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('modes');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { tool: 0o755, plain: 0o644, bin: 0o755 });
  assert.equal(statSync(path.join(layers, d.json.spec.code.digest, 'lib/handler.mjs')).mode & 0o7777, 0o644);
});

test('a single-file function with a nested entry path runs', async () => {
  const d = await s.deploy('nested', { runtime: 'nodejs20', code: 'export default () => "nested ok"', entry: 'lib/handler.mjs' });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('nested');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json, 'nested ok');
});

test("a deleted function's unpacked code is removed from the worker's disk, unless another function uses the same code", async () => {
  const pkg = b64(zip([{ name: 'index.mjs', data: 'export default () => "layered"' }, { name: 'data/blob.bin', data: Buffer.alloc(256 * 1024, 7) }]));
  const a = await s.deploy('layer-a', { runtime: 'nodejs20', package: pkg, entry: 'index.mjs' });
  assert.equal(a.status, 201, a.text);
  const b = await s.deploy('layer-b', { runtime: 'nodejs20', package: pkg, entry: 'index.mjs', memoryMb: 256 });
  assert.equal(b.status, 201, b.text);
  assert.equal((await s.invoke('layer-a')).json, 'layered');
  assert.equal((await s.invoke('layer-b')).json, 'layered');
  const dir = path.join(layers, a.json.spec.code.digest);
  assert.ok(existsSync(path.join(dir, 'data/blob.bin')));

  assert.equal((await s.del('/v1/functions/layer-a')).status, 200);
  await sleep(1000);
  assert.ok(existsSync(dir), 'layer-b still uses the code');
  assert.equal((await s.invoke('layer-b')).json, 'layered');

  assert.equal((await s.del('/v1/functions/layer-b')).status, 200);
  await eventually(() => !existsSync(dir), 10_000, 'the layer of the deleted functions to go');
  // Renamed away at once, then removed: nothing of it stays.
  await eventually(() => readdirSync(layers).filter((n) => n.startsWith('.')).length === 0, 10_000, 'no temporary or half-removed dirs left');
});

test('a function deleted while it runs: its invocation finishes, then its container and its layer go', async () => {
  const pkg = b64(zip([{ name: 'index.mjs', data: 'export default async () => { await new Promise((r) => setTimeout(r, 1500)); return "finished"; }' }]));
  const d = await s.deploy('busy', { runtime: 'nodejs20', package: pkg, entry: 'index.mjs' });
  assert.equal(d.status, 201, d.text);
  const dir = path.join(layers, d.json.spec.code.digest);
  const running = s.invoke('busy');
  await eventually(() => s.worker.pool.slots().some((x) => x.fn?.startsWith('busy@') && x.state !== 'idle'), 10_000, 'the invocation to start');
  assert.equal((await s.del('/v1/functions/busy')).status, 200);
  await sleep(300);
  assert.ok(existsSync(path.join(dir, 'index.mjs')), 'the running invocation keeps its code');
  const r = await running;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json, 'finished');
  await eventually(() => !existsSync(dir), 10_000, 'the layer to go after the invocation');
  await eventually(() => !s.worker.pool.slots().some((x) => x.fn?.startsWith('busy@')), 10_000, 'the container of the deleted function to go');
});

test('code that cannot be unpacked on the worker answers CODE_UNPACK_FAILED, without host paths or commands', async () => {
  // Stored past the gateway's check, as a package deployed before it existed would be.
  const redis = new Redis(s.redis.url);
  try {
    const registry = new FunctionRegistry(redis, `t${process.pid}`);
    const junk = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(64, 0x41)]);
    const { spec } = parseDeploy('old', { runtime: 'nodejs20', package: b64(junk), entry: 'index.mjs' });
    await registry.put(spec, junk);
  } finally {
    redis.disconnect();
  }
  const r = await s.invoke('old');
  assert.equal(r.status, 500, r.text);
  assert.equal(r.json.error.code, 'CODE_UNPACK_FAILED');
  assert.match(r.json.error.message, /could not be unpacked on the worker: not valid gzip data/);
  assert.doesNotMatch(r.json.error.message, new RegExp(`${s.worker.engine.stateDir}|/tmp/|tar -|busybox|/proc/`));
  assert.deepEqual(readdirSync(layers).filter((n) => n.startsWith('.')), [], 'the partial unpack was removed');
});
