/**
 * Block I/O limits against the real kernel and disk: a container limited to 5 MiB/s of
 * reads reads a 50 MiB file of its image layers at that rate, whether the limit came
 * with the spec or at specialisation (updateLimits), and its usage shows the bytes.
 * The file is dropped from the page cache before each read (that file only: dd
 * iflag=nocache), so that the reads reach the disk.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { testEngine, type TestEngine } from '../../support/engine.js';
import type { ContainerSpec } from '../../../worker/engine/spec.js';
import type { ExitResult } from '../../../worker/engine/container.js';
import { blockDeviceOf } from '../../../worker/engine/blockdev.js';
import { EngineError } from '../../../worker/engine/errors.js';

const MiB = 1024 * 1024;
const FILE_MIB = 50;
let te: TestEngine;
let bigLayer: string;

before(async () => {
  te = await testEngine('io');
  bigLayer = path.join(te.work, 'big-layer');
  mkdirSync(bigLayer);
  execFileSync('dd', ['if=/dev/urandom', `of=${path.join(bigLayer, 'big')}`, 'bs=1M', `count=${FILE_MIB}`, 'conv=fsync', 'status=none']);
});
after(async () => {
  await te.cleanup();
});

/** Drops the file's pages from the page cache (only its own), and checks that they went. */
function dropCache(): void {
  const file = path.join(bigLayer, 'big');
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
  const resident = Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
  assert.ok(resident < MiB, `${resident} bytes of the file still cached`);
}

function spec(extra: Partial<ContainerSpec> = {}): ContainerSpec {
  return { ...extra, rootfs: { layers: [...te.layers, bigLayer] }, process: { args: ['/bin/dd', 'if=/big', 'of=/dev/null', 'bs=1M'] } };
}

/** Creates the container, lets setup() act on it, then times the read from start to exit. */
async function timedRead(s: ContainerSpec, setup?: (c: import('../../../worker/engine/container.js').Container) => void): Promise<{ seconds: number; result: ExitResult }> {
  const c = await te.engine.create(s, { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let err = '';
    c.stderr!.on('data', (d) => (err += d));
    setup?.(c);
    if (!noDevice) dropCache();
    const t = performance.now();
    c.start();
    const result = await c.wait();
    const seconds = (performance.now() - t) / 1000;
    assert.equal(result.exitCode, 0, err);
    return { seconds, result };
  } finally {
    await c.delete();
  }
}

const device = (() => {
  try {
    return blockDeviceOf(tmpdir());
  } catch {
    return undefined;
  }
})();
/** The cgroup v2 VM (tools/v2vm) runs on tmpfs and 9p: no block device to throttle. */
const noDevice = device?.device ? false : `no block device under the state dir (${device && 'why' in device ? device.why : 'unknown'}); the refusal is tested instead`;

test('where the state dir has no block device, io limits are refused with the reason', { skip: !noDevice && 'the state dir is on a block device here' }, async () => {
  await assert.rejects(te.engine.create(spec({ io: { readBps: 5 * MiB } })), (e: unknown) => e instanceof EngineError && /io cannot be enforced: .*without a block device/.test(e.message));
  // No limit asked for: the container runs as ever.
  assert.equal((await timedRead(spec({ io: {} }))).result.exitCode, 0);
});

test('the state dir is on a block device here (the io limits have something to throttle)', { skip: noDevice }, () => {
  const dev = blockDeviceOf(te.engine.stateDir);
  assert.ok(dev.device, 'why' in dev ? dev.why : '');
  assert.match(dev.device!, /^\d+:\d+$/);
});

test('5 MiB/s of reads from the spec: a 50 MiB file of the image layers takes about 10 s, and the usage shows the bytes', { skip: noDevice }, async () => {
  const baseline = await timedRead(spec());
  const limited = await timedRead(spec({ io: { readBps: 5 * MiB } }));
  console.log(`read ${FILE_MIB} MiB: unlimited ${baseline.seconds.toFixed(2)} s; at 5 MiB/s ${limited.seconds.toFixed(2)} s (${(FILE_MIB / limited.seconds).toFixed(2)} MiB/s)`);
  // The floor is the limit's own: the kernel cannot let 50 MiB through 5 MiB/s in less
  // (bar a first slice). The ceiling is loose: the machine is shared and its disk too.
  assert.ok(limited.seconds >= 9, `read at ${(FILE_MIB / limited.seconds).toFixed(1)} MiB/s, above the limit`);
  assert.ok(limited.seconds <= 20, `read took ${limited.seconds.toFixed(1)} s`);
  assert.ok(limited.result.usage.ioReadBytes >= FILE_MIB * MiB, `ioReadBytes ${limited.result.usage.ioReadBytes}`);
  // v2's io.stat counts every container's I/O; v1's blkio.throttle.io_service_bytes only
  // that of a cgroup with a throttle rule on the device.
  if (te.engine.cgroups.version === 2) assert.ok(baseline.result.usage.ioReadBytes >= FILE_MIB * MiB, 'unlimited reads are counted too');
});

test('a limit given at specialisation (updateLimits) throttles the same way; {} lifts it again', { skip: noDevice }, async () => {
  const limited = await timedRead(spec(), (c) => c.updateLimits({ io: { readBps: 10 * MiB } }));
  console.log(`read ${FILE_MIB} MiB at 10 MiB/s set by updateLimits: ${limited.seconds.toFixed(2)} s`);
  assert.ok(limited.seconds >= 4.5, `read at ${(FILE_MIB / limited.seconds).toFixed(1)} MiB/s, above the limit`);
  assert.ok(limited.result.usage.ioReadBytes >= FILE_MIB * MiB);
  const lifted = await timedRead(spec({ io: { readBps: 1 * MiB } }), (c) => c.updateLimits({ io: {} }));
  console.log(`read ${FILE_MIB} MiB with the 1 MiB/s limit lifted by updateLimits: ${lifted.seconds.toFixed(2)} s`);
  assert.ok(lifted.seconds < 25, 'not held to 1 MiB/s (50 s)');
});

test('bad io limits are refused naming the field', async () => {
  await assert.rejects(te.engine.create(spec({ io: { readBps: -1 } })), (e: unknown) => e instanceof EngineError && /io\.readBps/.test(e.message));
  await assert.rejects(te.engine.create(spec({ io: { writeIops: 1.5 } })), (e: unknown) => e instanceof EngineError && /io\.writeIops/.test(e.message));
});
