import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cgroupLimits, cpusOf, CPU_PERIOD_US } from './limits.js';
import { toConfig } from './config.js';
import { DEFAULTS } from './spec.js';
import { InvalidSpecError } from './errors.js';
import { LIMITS } from '../../common/function-spec.js';

test('cores become a quota over the 100 ms period, a burst likewise', () => {
  assert.deepEqual(cgroupLimits({ memoryBytes: 64 << 20, cpus: 0.5, cpuBurst: 0.25, pids: 32 }), {
    memoryBytes: 64 << 20,
    cpuQuotaUs: 50_000,
    cpuPeriodUs: CPU_PERIOD_US,
    cpuBurstUs: 25_000,
    pids: 32,
  });
});

test('an update names only what changes, and a burst is checked against the quota in force', () => {
  assert.deepEqual(cgroupLimits({ pids: 100 }), { pids: 100 });
  assert.deepEqual(cgroupLimits({ cpuBurst: 0.1 }, 0.2), { cpuBurstUs: 10_000 });
  assert.throws(() => cgroupLimits({ cpuBurst: 0.3 }, 0.2), (e: unknown) => e instanceof InvalidSpecError && /limits\.cpuBurst/.test(e.message));
  assert.equal(cpusOf(cgroupLimits({ cpus: 0.072 })), 0.072);
});

test('bad limits are refused naming the field', () => {
  assert.throws(() => cgroupLimits({ memoryBytes: 1024 }), /limits\.memoryBytes/);
  assert.throws(() => cgroupLimits({ cpus: 0 }), /limits\.cpus/);
  assert.throws(() => cgroupLimits({ pids: 1.5 }), /limits\.pids/);
  assert.throws(() => cgroupLimits({ cpus: 1, cpuBurst: -1 }), /limits\.cpuBurst/);
});

test("toConfig's defaults are a function's defaults (LIMITS), converted by the same module", () => {
  const cfg = toConfig({ rootfs: { layers: ['/l'] }, process: { args: ['/bin/true'] } }, '/tmp/state');
  assert.deepEqual(cfg.cgroup, cgroupLimits({ memoryBytes: DEFAULTS.memoryBytes, cpus: DEFAULTS.cpus, pids: DEFAULTS.pids }));
  assert.equal(cfg.cgroup.memoryBytes, LIMITS.memoryMb.default * 1024 * 1024);
  assert.equal(cfg.cgroup.pids, LIMITS.pidsLimit.default);
  assert.equal(cfg.diskBytes, LIMITS.diskMb.default * 1024 * 1024);
  assert.equal(cfg.cgroup.cpuBurstUs, undefined, 'no burst unless asked for');
});
