import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { blockDeviceOf, devName } from './blockdev.js';

test('devName splits a dev_t as glibc does (12-bit major, 20-bit minor)', () => {
  assert.equal(devName(0xfe00n), '254:0');
  assert.equal(devName(0x0803n), '8:3');
  // major 259 (NVMe partitions), minor 1: major bits above 8 go to bits 8-19.
  assert.equal(devName((259n << 8n) | 1n), '259:1');
  // A large minor: its high bits sit above bit 20.
  assert.equal(devName(((300000n & ~0xffn) << 12n) | (300000n & 0xffn) | (8n << 8n)), '8:300000');
});

test('a tmpfs has no block device: the answer says why', () => {
  const r = blockDeviceOf('/dev/shm');
  assert.equal(r.device, undefined);
  assert.match('why' in r ? r.why : '', /without a block device/);
});

test('a partition is mapped to its whole disk through sysfs (io.max refuses partitions)', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-blockdev-'));
  try {
    const dev = devName(statSync(dir, { bigint: true }).dev);
    if (dev.startsWith('0:')) return t.skip(`${tmpdir()} is not on a block device here`);
    // A fabricated /sys: dev/block/<dev> links to a partition below its disk.
    const sys = path.join(dir, 'sys');
    mkdirSync(path.join(sys, 'devices/vdz/vdz1'), { recursive: true });
    writeFileSync(path.join(sys, 'devices/vdz/dev'), '253:16\n');
    writeFileSync(path.join(sys, 'devices/vdz/vdz1/partition'), '1\n');
    mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
    symlinkSync(path.join(sys, 'devices/vdz/vdz1'), path.join(sys, 'dev/block', dev));
    assert.deepEqual(blockDeviceOf(dir, sys), { device: '253:16' });
    rmSync(path.join(sys, 'devices/vdz/vdz1/partition'));
    assert.deepEqual(blockDeviceOf(dir, sys), { device: dev }, 'a whole disk is itself');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
