import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerLimits, functionLimits, functionTarget, limitsChange, stemLimits } from './specconv.js';
import { LIMITS, parseDeploy, versionOf } from '../../common/function-spec.js';
import type { FunctionVersion } from '../../common/registry.js';

const MiB = 1024 * 1024;
const spec = (body: Record<string, unknown>) => parseDeploy('f', { runtime: 'nodejs20', code: 'export default () => 1', ...body }).spec;

test('a function without pids or disk gets the defaults, and a burst the size of its quota', () => {
  const l = functionLimits(spec({ memoryMb: 256 }));
  assert.deepEqual(l, { memoryMb: 256, cpus: spec({ memoryMb: 256 }).cpu / 1000, cpuBurst: l.cpus, pids: LIMITS.pidsLimit.default, diskMb: LIMITS.diskMb.default });
});

test('deployed pidsLimit and diskMb are the container limits', () => {
  const c = containerLimits(functionLimits(spec({ memoryMb: 128, cpu: 500, pidsLimit: 200, diskMb: 32 })));
  assert.deepEqual(c, { memoryBytes: 128 * MiB, cpus: 0.5, cpuBurst: 0.5, pids: 200, diskBytes: 32 * MiB });
});

test('a stem cell boots with its shape memory, the boot CPU, no burst and the default pids and disk', () => {
  const c = containerLimits(stemLimits(128, 1));
  assert.deepEqual(c, { memoryBytes: 128 * MiB, cpus: 1, pids: LIMITS.pidsLimit.default, diskBytes: LIMITS.diskMb.default * MiB });
});

test('specialising a stem: only the CPU changes for a function of its size and defaults', () => {
  const fn = functionLimits(spec({ memoryMb: 128 }));
  assert.deepEqual(limitsChange(stemLimits(128, 1), fn), { cpu: { cpus: fn.cpus, cpuBurst: fn.cpus } });
  assert.deepEqual(limitsChange(fn, fn), {});
});

test('specialising a stem for other pids, disk or memory changes them before the code runs', () => {
  const fn = functionLimits(spec({ memoryMb: 256, pidsLimit: 20, diskMb: 16 }));
  const change = limitsChange(stemLimits(128, 1), fn);
  assert.deepEqual(change.before, { memoryBytes: 256 * MiB, pids: 20, diskBytes: 16 * MiB });
  assert.deepEqual(change.cpu, { cpus: fn.cpus, cpuBurst: fn.cpus });
});

test('a deploy without pidsLimit or diskMb keeps its version id (the fields are absent, not defaulted)', () => {
  const s = spec({});
  assert.equal('pidsLimit' in s, false);
  assert.equal('diskMb' in s, false);
  assert.notEqual(versionOf(s), versionOf(spec({ pidsLimit: LIMITS.pidsLimit.default })));
});

test('functionTarget carries the converted limits and the load timeout', () => {
  const s = spec({ timeoutMs: 1000, pidsLimit: 99 });
  const v = { name: 'f', version: versionOf(s), spec: s } as FunctionVersion;
  const t = functionTarget(v, '/code');
  assert.equal(t.limits.pids, 99);
  assert.equal(t.memoryMb, t.limits.memoryMb);
  assert.equal(t.loadTimeoutMs, 10_000);
  assert.equal(t.codeDir, '/code');
});
