/**
 * Issue 15's isolation options through the whole stack (gateway, BullMQ on a real
 * redis-server, the worker's pool, containers): a function's block I/O limit holds its
 * reads to the rate and its record and the worker's metrics show the bytes; a function
 * deployed with userns gets containers whose root is an unprivileged host id range.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { tar } from '../support/archives.js';
import { blockDeviceOf } from '../../worker/engine/blockdev.js';
import { usernsUnavailable } from '../support/userns.js';

const MiB = 1024 * 1024;
const FILE_MIB = 8;
let s: TestStack;
before(async () => {
  s = await startStack('isolation', { sizing: { minStems: 1, maxStems: 1 } });
});
after(async () => {
  await s.close();
});

const onDisk = blockDeviceOf(tmpdir()).device !== undefined;

test('a function limited to 2 MiB/s of reads reads an 8 MiB file of its code at that rate; its record and the metrics show the bytes', { skip: !onDisk && 'no block device under the state dir (the v2 VM); test/worker/engine/io.test.ts tests the refusal' }, async () => {
  const handler = `import { readFileSync } from 'node:fs';
export default (e) => (e.read ? readFileSync('/var/task/blob.bin').length : 'loaded');`;
  // Random bytes: incompressible, so the 8 MiB are 8 MiB on disk as in the package.
  const pkg = gzipSync(tar([{ name: 'index.mjs', data: handler }, { name: 'blob.bin', data: randomBytes(FILE_MIB * MiB) }]));
  const d = await s.deploy('reader', { runtime: 'nodejs20', package: pkg.toString('base64'), entry: 'index.mjs', io: { readBps: 2 * MiB } });
  assert.equal(d.status, 201, d.text);
  // The first call materialises the code on the worker's disk (and loads the module).
  assert.equal((await s.invoke('reader', { read: false })).json, 'loaded');
  const blob = path.join(s.worker.engine.stateDir, 'layers', 'code', d.json.spec.code.digest, 'blob.bin');
  assert.ok(existsSync(blob), blob);
  // Written moments ago: synced first, or its dirty pages could not be dropped.
  execFileSync('dd', [`of=${blob}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0', 'status=none']);
  const r = await s.invoke('reader', { read: true }, { query: '?wait=60000' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json, FILE_MIB * MiB);
  const rec = (await s.get(`/v1/invocations/${r.headers.get('x-invocation-id')}`)).json;
  console.log(`read ${FILE_MIB} MiB at 2 MiB/s: execMs ${rec.timings.execMs.toFixed(0)}, usage ${JSON.stringify(rec.usage)}`);
  assert.ok(rec.usage.ioReadBytes >= FILE_MIB * MiB, JSON.stringify(rec.usage));
  // 8 MiB through 2 MiB/s: at least ~4 s (bar the throttle's first slice).
  assert.ok(rec.timings.execMs >= 3500, `read in ${rec.timings.execMs} ms, faster than the limit allows`);
  await eventually(async () => /faasbox_function_io_bytes_total\{function="reader",direction="read"\} (\d+)/.test((await s.get('/metrics')).text), 10_000, 'the io counter');
  const m = /faasbox_function_io_bytes_total\{function="reader",direction="read"\} (\d+)/.exec((await s.get('/metrics')).text)!;
  assert.ok(Number(m[1]) >= FILE_MIB * MiB, m[0]);
});

test('userns: a function deployed with it runs as an id of a host range of its own; one without it does not', { skip: usernsUnavailable() }, async () => {
  const code = `import { readFileSync } from 'node:fs';
export default () => ({ uid: process.getuid(), map: readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\\s+/).map(Number) });`;
  assert.equal((await s.deploy('inns', { runtime: 'nodejs20', code, userns: true })).status, 201);
  assert.equal((await s.deploy('plainns', { runtime: 'nodejs20', code })).status, 201);
  const inns = await s.invoke('inns');
  assert.equal(inns.status, 200, inns.text);
  const [inside, host, size] = inns.json.map;
  assert.equal(inside, 0);
  assert.ok(host >= 2 ** 31, `host id ${host}`);
  assert.equal(size, 65536);
  assert.equal(inns.headers.get('x-cold-start'), 'cold', 'booted for the function: stem cells have no user namespace');
  // Warm reuse keeps the same container (and range).
  const again = await s.invoke('inns');
  assert.equal(again.headers.get('x-cold-start'), 'warm');
  assert.deepEqual(again.json.map, inns.json.map);
  const plain = await s.invoke('plainns');
  assert.equal(plain.status, 200, plain.text);
  assert.deepEqual(plain.json.map, [0, 0, 4294967295], 'the host\'s own ids');
});

test('worker-wide userns (FAASBOX_USERNS=1): stem cells are userns and specialise for a function; userns:false boots its own', { skip: usernsUnavailable() }, async () => {
  const w = await startStack('isolation-wide', { userns: true, sizing: { minStems: 1, maxStems: 1 } });
  try {
    // The nodejs20 stem cell of the function's size: python3's may be idle first, and then the invocation would boot cold.
    await eventually(() => w.worker.pool.slots().some((x) => x.kind === 'stem' && x.state === 'idle' && x.runtime === 'nodejs20' && x.memoryMb === 128), 30_000, 'a nodejs20 stem cell of 128 MB');
    const code = `import { readFileSync } from 'node:fs';
export default () => readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\\s+/).map(Number);`;
    assert.equal((await w.deploy('wide', { runtime: 'nodejs20', code })).status, 201);
    assert.equal((await w.deploy('optout', { runtime: 'nodejs20', code, userns: false })).status, 201);
    const wide = await w.invoke('wide');
    assert.equal(wide.status, 200, wide.text);
    assert.equal(wide.headers.get('x-cold-start'), 'specialized');
    assert.ok(wide.json[1] >= 2 ** 31, JSON.stringify(wide.json));
    const out = await w.invoke('optout');
    assert.equal(out.status, 200, out.text);
    assert.equal(out.headers.get('x-cold-start'), 'cold');
    assert.deepEqual(out.json, [0, 0, 4294967295]);
  } finally {
    await w.close();
  }
});
