import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { IdRanges, leasesDir, DEFAULT_BASE, DEFAULT_SIZE } from './ranges.js';
import { idmappedOverlaySupported } from './namespace.js';
import { EngineError } from '../errors.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-ranges-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('ranges are disjoint, start at the base and never include (uid_t)-1', () => {
  withDir((dir) => {
    const r = new IdRanges(dir);
    const a = r.allocate('a');
    const b = r.allocate('b');
    assert.equal(a.hostId, DEFAULT_BASE);
    assert.equal(a.size, DEFAULT_SIZE);
    assert.ok(b.hostId >= a.hostId + a.size || a.hostId >= b.hostId + b.size, 'disjoint');
    const last = r.range(r.count - 1);
    assert.ok(last.hostId + last.size - 1 < 2 ** 32 - 1);
  });
});

test('two allocators on one state dir never share a range (the lease file is exclusive)', () => {
  withDir((dir) => {
    const one = new IdRanges(dir);
    const two = new IdRanges(dir);
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      for (const r of [one.allocate(`one-${i}`), two.allocate(`two-${i}`)]) {
        assert.ok(!seen.has(r.index), `range ${r.index} handed out twice`);
        seen.add(r.index);
      }
    }
    assert.equal(one.leases().size, 40);
  });
});

test('a released range is leased again; exhaustion is a clear error', () => {
  withDir((dir) => {
    // Three ranges of 65536 just below 2^32-1.
    const r = new IdRanges(dir, { base: 2 ** 32 - 1 - 3 * 65536, size: 65536 });
    assert.equal(r.count, 3);
    const got = [r.allocate('a'), r.allocate('b'), r.allocate('c')];
    assert.throws(() => r.allocate('d'), (e: unknown) => e instanceof EngineError && /all 3 user-namespace id ranges are leased/.test(e.message));
    r.release(got[1]!, 'b');
    assert.equal(r.allocate('d').index, got[1]!.index);
    // A stale release (the range was freed by gc and leased again) leaves the new lease alone.
    r.release(got[1]!, 'b');
    assert.equal(r.leases().get(got[1]!.index), 'd');
  });
});

test('collect frees the leases of containers that are gone, and only those', () => {
  withDir((dir) => {
    const r = new IdRanges(dir);
    r.allocate('live');
    r.allocate('crashed');
    assert.deepEqual(r.collect((id) => id === 'live'), ['crashed']);
    assert.deepEqual([...r.leases().values()], ['live']);
    assert.deepEqual(readdirSync(leasesDir(dir)).filter((n) => n.startsWith('.')), [], 'no draft left');
  });
});

test('a lease written by hand (another engine) is respected', () => {
  withDir((dir) => {
    mkdirSync(leasesDir(dir));
    writeFileSync(path.join(leasesDir(dir), '0'), 'other');
    assert.equal(new IdRanges(dir).allocate('mine').index, 1);
  });
});

test('bad configuration is refused', () => {
  withDir((dir) => {
    assert.throws(() => new IdRanges(dir, { base: 1000 }), /at least 65536/);
    assert.throws(() => new IdRanges(dir, { size: 0 }), /range size/);
    assert.throws(() => new IdRanges(dir, { base: 2 ** 32 - 10 }), /leaves no range/);
  });
});

test('idmapped overlay needs 5.19+', () => {
  assert.equal(idmappedOverlaySupported('5.15.0-91-generic'), false);
  assert.equal(idmappedOverlaySupported('5.12.0'), false);
  assert.equal(idmappedOverlaySupported('5.19.0'), true);
  assert.equal(idmappedOverlaySupported('6.1.0-18-amd64'), true);
  assert.equal(idmappedOverlaySupported('6.18.44-fc-v1098'), true);
  assert.equal(idmappedOverlaySupported('garbage'), false);
});
