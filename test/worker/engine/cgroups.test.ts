/**
 * The cgroup driver against the real kernel (root). This machine mounts cgroup v1, so
 * the limits, usage, OOM and pids checks run on v1 here (and would run on v2 on a pure
 * v2 host: the assertions go through the driver, and the readback names both
 * flavours' files). The empty cgroup2 hierarchy at /sys/fs/cgroup/unified has no
 * controllers but does have cgroup.kill and cgroup.freeze, so the v2 kill paths run
 * on the real kernel too. Everything lives below a unique root that must be gone at
 * the end, in every hierarchy.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { release } from 'node:os';
import { existsSync, readFileSync, mkdirSync, rmdirSync, readdirSync } from 'node:fs';
import {
  detectCgroupDriver,
  cgroupVersionAt,
  v1ControllerMounts,
  realFs,
  CgroupError,
  CgroupV2Group,
  type Cgroup,
  type CgroupDriver,
} from '../../../worker/engine/cgroups/index.js';
import { eventually } from '../../support/eventually.js';

const MB = 1024 * 1024;
const ROOT = `/faasbox-test-${randomBytes(4).toString('hex')}`;
const UNIFIED = '/sys/fs/cgroup/unified';
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const driver: CgroupDriver = detectCgroupDriver({ root: ROOT });
const made: Cgroup[] = [];
const children: ChildProcess[] = [];

/** Every directory the root could occupy: one per v1 hierarchy we use, or the v2 one. */
function rootDirs(): string[] {
  if (driver.version === 2) return [`/sys/fs/cgroup${ROOT}`];
  const mounts = v1ControllerMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  // blkio: optional, joined where mounted (block I/O limits).
  return [...new Set(['memory', 'cpu', 'cpuacct', 'pids', 'freezer', ...(mounts.has('blkio') ? ['blkio'] : [])].map((c) => `${mounts.get(c)}${ROOT}`))];
}

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const cg of made) await cg.destroy().catch(() => {});
  for (const name of driver.list()) await driver.open(name)?.destroy().catch(() => {});
  driver.removeRoot();
});

function create(name: string, limits: Parameters<CgroupDriver['create']>[1]): Cgroup {
  const cg = driver.create(name, limits);
  made.push(cg);
  return cg;
}

/** A shell that joins the cgroup the way the container's C stage does (writes "0" to each cgroup.procs), then runs script. */
function runIn(cg: Cgroup, script: string): ChildProcess {
  const join = cg.procsFiles.map((f) => `echo 0 > ${f}`).join(' && ');
  const c = spawn('/bin/sh', ['-c', `${join} && ${script}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(c);
  return c;
}


const read = (p: string) => readFileSync(p, 'utf8').trim();
const dirOf = (cg: Cgroup, file: string) => cg.procsFiles.map((p) => p.replace(/\/cgroup\.procs$/, '')).find((d) => existsSync(`${d}/${file}`))!;

test(`the driver detected on this machine (cgroup v${driver.version}) creates with limits that the kernel reads back`, () => {
  assert.equal(driver.version, cgroupVersionAt('/sys/fs/cgroup'));
  const cg = create('limits', { memoryBytes: 32 * MB, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, pids: 64 });
  assert.throws(() => driver.create('limits', {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_EXISTS');
  if (driver.version === 1) {
    assert.equal(cg.procsFiles.length, rootDirs().length);
    const mem = dirOf(cg, 'memory.limit_in_bytes');
    assert.equal(read(`${mem}/memory.limit_in_bytes`), String(32 * MB));
    if (existsSync(`${mem}/memory.memsw.limit_in_bytes`)) assert.equal(read(`${mem}/memory.memsw.limit_in_bytes`), String(32 * MB));
    assert.equal(read(`${mem}/memory.swappiness`), '0');
    assert.equal(read(`${dirOf(cg, 'cpu.cfs_quota_us')}/cpu.cfs_quota_us`), '50000');
    assert.equal(read(`${dirOf(cg, 'cpu.cfs_period_us')}/cpu.cfs_period_us`), '100000');
    assert.equal(read(`${dirOf(cg, 'pids.max')}/pids.max`), '64');
    // Raising goes through too (memsw first), and lowering again.
    cg.setLimits({ memoryBytes: 64 * MB });
    assert.equal(read(`${mem}/memory.limit_in_bytes`), String(64 * MB));
    // CFS burst, where the kernel has it: set after the quota, and a lower quota under an
    // existing burst goes through (the burst is zeroed first; the kernel refuses burst > quota).
    const cpuDir = dirOf(cg, 'cpu.cfs_quota_us');
    if (existsSync(`${cpuDir}/cpu.cfs_burst_us`)) {
      cg.setLimits({ cpuQuotaUs: 50_000, cpuBurstUs: 50_000 });
      assert.equal(read(`${cpuDir}/cpu.cfs_burst_us`), '50000');
      cg.setLimits({ cpuQuotaUs: 20_000, cpuBurstUs: 10_000 });
      assert.equal(read(`${cpuDir}/cpu.cfs_quota_us`), '20000');
      assert.equal(read(`${cpuDir}/cpu.cfs_burst_us`), '10000');
    }
    cg.setLimits({ memoryBytes: 48 * MB, cpuQuotaUs: -1 });
    assert.equal(read(`${mem}/memory.limit_in_bytes`), String(48 * MB));
    assert.equal(read(`${dirOf(cg, 'cpu.cfs_quota_us')}/cpu.cfs_quota_us`), '-1');
  } else {
    const [dir] = cg.procsFiles.map((p) => p.replace(/\/cgroup\.procs$/, ''));
    assert.equal(read(`${dir}/memory.max`), String(32 * MB));
    if (existsSync(`${dir}/memory.swap.max`)) assert.equal(read(`${dir}/memory.swap.max`), '0');
    assert.equal(read(`${dir}/cpu.max`), '50000 100000');
    assert.equal(read(`${dir}/pids.max`), '64');
    cg.setLimits({ memoryBytes: 64 * MB });
    assert.equal(read(`${dir}/memory.max`), String(64 * MB));
    // cpu.max.burst (5.14+): after the quota, and a lower quota under a burst goes through
    // (the burst is zeroed first; the kernel refuses burst > quota).
    if (existsSync(`${dir}/cpu.max.burst`)) {
      cg.setLimits({ cpuQuotaUs: 50_000, cpuBurstUs: 50_000 });
      assert.equal(read(`${dir}/cpu.max.burst`), '50000');
      cg.setLimits({ cpuQuotaUs: 20_000, cpuBurstUs: 10_000 });
      assert.equal(read(`${dir}/cpu.max`), '20000 100000');
      assert.equal(read(`${dir}/cpu.max.burst`), '10000');
    }
    cg.setLimits({ memoryBytes: 48 * MB, cpuQuotaUs: -1, pids: -1 });
    assert.equal(read(`${dir}/memory.max`), String(48 * MB));
    assert.equal(read(`${dir}/cpu.max`), 'max 100000');
    assert.equal(read(`${dir}/pids.max`), 'max');
  }
});

/** A whole disk of this machine (not a partition), as MAJ:MIN; undefined when there is none (the v2 VM: tmpfs and 9p). */
function someDisk(): string | undefined {
  for (const name of existsSync('/sys/block') ? readdirSync('/sys/block') : []) {
    const dev = `/sys/block/${name}/dev`;
    if (existsSync(dev)) return read(dev);
  }
  return undefined;
}
const disk = someDisk();
const ioOffered = driver.version === 1 || read('/sys/fs/cgroup/cgroup.controllers').split(/\s+/).includes('io');

test(`block I/O limits are written as the kernel reads them back (cgroup v${driver.version})`, { skip: (!disk && 'this machine has no block device (/sys/block is empty)') || (!ioOffered && 'this kernel offers no io controller') }, () => {
  const cg = create('io', { io: { device: disk!, readBps: 5 * MB, writeIops: 100 } });
  if (driver.version === 1) {
    const dir = dirOf(cg, 'blkio.throttle.read_bps_device');
    assert.ok(dir, 'the container cgroup has a blkio directory');
    assert.equal(read(`${dir}/blkio.throttle.read_bps_device`), `${disk} ${5 * MB}`);
    assert.equal(read(`${dir}/blkio.throttle.write_iops_device`), `${disk} 100`);
    assert.equal(read(`${dir}/blkio.throttle.write_bps_device`), '', 'a 0 writes no rule');
    cg.setLimits({ io: { device: disk! } });
    assert.equal(read(`${dir}/blkio.throttle.read_bps_device`), '', 'lifted');
  } else {
    const [dir] = cg.procsFiles.map((p) => p.replace(/\/cgroup\.procs$/, ''));
    assert.equal(read(`${dir}/io.max`), `${disk} rbps=${5 * MB} wbps=max riops=max wiops=100`);
    cg.setLimits({ io: { device: disk! } });
    // A line whose every limit is max is removed.
    assert.equal(read(`${dir}/io.max`), '');
  }
  assert.deepEqual(cg.ioUsage(), { ioReadBytes: 0, ioWriteBytes: 0 });
});

test('a process that joins shows in pids() and stats(); kill() ends it with SIGKILL', async () => {
  const cg = create('proc', { memoryBytes: 64 * MB, pids: 32 });
  // Burn some CPU first, so there is usage to see: enough for v1's cpuacct.stat, which
  // counts user and system time in clock ticks (10 ms) and read 0 for a 20k-step loop.
  const child = runIn(cg, 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 30');
  await eventually(() => cg.pids().includes(child.pid!), 10_000, 'the shell to join');
  await eventually(() => cg.stats().cpuUsageUsec > 0, 10_000, 'CPU usage');
  await eventually(() => { const t = cg.stats(); return (t.userUsec ?? 0) + (t.systemUsec ?? 0) > 0; }, 10_000, 'user+system time to be counted');
  const s = cg.stats();
  assert.ok(s.pidsCurrent >= 1, `pidsCurrent ${s.pidsCurrent}`);
  assert.ok(s.memoryCurrentBytes > 0, `memoryCurrentBytes ${s.memoryCurrentBytes}`);
  assert.ok(s.memoryPeakBytes >= s.memoryCurrentBytes);
  assert.ok((s.userUsec ?? 0) + (s.systemUsec ?? 0) > 0, 'user+system time');
  assert.equal(s.oomKills, 0);
  const exit = once(child, 'exit');
  await cg.kill();
  assert.deepEqual(cg.pids(), []);
  assert.deepEqual(await exit, [null, 'SIGKILL']);
});

test('a memory hog above the limit is OOM-killed and counted; the peak stays at the limit; resetPeak starts over', async () => {
  const cg = create('oom', { memoryBytes: 32 * MB, pids: 16 });
  const hog = runIn(cg, `exec ${PYTHON} -c "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * (len(b) // 4096); import time; time.sleep(30)"`);
  let stderr = '';
  hog.stderr!.on('data', (d) => (stderr += d));
  const [code, signal] = await once(hog, 'exit');
  assert.equal(signal, 'SIGKILL', `expected the OOM killer, got exit ${code}: ${stderr}`);
  const s = cg.stats();
  assert.ok(s.oomKills >= 1, `oomKills ${s.oomKills}`);
  assert.ok(s.memoryPeakBytes > 16 * MB && s.memoryPeakBytes <= 32 * MB, `peak ${s.memoryPeakBytes}`);
  cg.resetPeak();
  const after = cg.stats().memoryPeakBytes;
  if (peakResettable(driver)) {
    assert.ok(after < 16 * MB, `peak after reset ${after}`);
  } else {
    // cgroup v2 before 6.12: memory.peak is read-only; the driver keeps the lifetime peak.
    assert.ok(after > 16 * MB && after <= 32 * MB, `lifetime peak kept where it cannot be reset (kernel ${release()}): ${after}`);
  }
});

/** v1's max_usage_in_bytes always resets; v2's memory.peak from Linux 6.12 on. */
function peakResettable(d: CgroupDriver): boolean {
  const [major, minor] = release().split(/[.-]/).map(Number) as [number, number];
  return d.version === 1 || major > 6 || (major === 6 && minor >= 12);
}

test('a fork loop is held at pids.max', async () => {
  const cg = create('forks', { pids: 16 });
  const shell = runIn(cg, 'i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; wait');
  // The loop ends (the shell gives up on a failed fork, or finishes) with at most 16 tasks alive.
  await eventually(() => cg.pids().length >= 10, 10_000, 'forks to pile up');
  await sleep(300);
  const s = cg.stats();
  assert.ok(s.pidsCurrent <= 16 && s.pidsCurrent >= 10, `pidsCurrent ${s.pidsCurrent}`);
  assert.ok(cg.pids().length <= 16);
  const events = `${dirOf(cg, 'pids.events')}/pids.events`;
  assert.match(read(events), /^max [1-9]/m, 'the kernel refused forks');
  const exit = once(shell, 'exit');
  await cg.kill();
  if (shell.exitCode === null && shell.signalCode === null) await exit;
  assert.deepEqual(cg.pids(), []);
});

test('kill() empties the cgroup while a shell is forking as fast as it can', async () => {
  const cg = create('forking', { pids: 200 });
  const shell = runIn(cg, 'while :; do /bin/true & sleep 30 & done');
  await eventually(() => cg.pids().length >= 20, 10_000, 'the fork loop to get going');
  const exit = once(shell, 'exit');
  await cg.kill();
  assert.deepEqual(cg.pids(), []);
  await sleep(200);
  assert.deepEqual(cg.pids(), [], 'nothing forked its way back in');
  // pids.current also counts exited tasks until they are reaped: the orphans of the
  // killed shell wait for the host's init here (in a container, its pid namespace's
  // end reaps them at once).
  await eventually(() => cg.stats().pidsCurrent === 0, 10_000, 'the killed tasks to be reaped');
  if (shell.exitCode === null && shell.signalCode === null) await exit;
  assert.equal(shell.signalCode, 'SIGKILL');
});

test('a restarted worker lists leftovers under the root and garbage-collects them; destroy removes every directory', async () => {
  const a = create('gc-a', { pids: 8 });
  create('gc-b', {});
  const child = runIn(a, 'exec sleep 30');
  await eventually(() => a.pids().length === 1, 10_000, 'the member to join');
  const fresh = detectCgroupDriver({ root: ROOT });
  assert.ok(['gc-a', 'gc-b'].every((n) => fresh.list().includes(n)), `list: ${fresh.list()}`);
  const dirs = a.procsFiles.map((p) => p.replace(/\/cgroup\.procs$/, ''));
  for (const name of ['gc-a', 'gc-b']) await fresh.open(name)!.destroy();
  for (const d of dirs) assert.equal(existsSync(d), false, d);
  assert.equal(fresh.open('gc-a'), undefined);
  assert.equal(child.signalCode ?? (await once(child, 'exit'))[1], 'SIGKILL');
  await a.destroy(); // idempotent
});

/** CPU a cgroup's members use over ms, in microseconds. */
async function cpuOver(cg: Cgroup, ms: number): Promise<number> {
  const a = cg.usage().cpuUsageUsec;
  await sleep(ms);
  return cg.usage().cpuUsageUsec - a;
}

test(`freeze() stops a busy loop (no CPU while frozen), thaw() lets it run again, kill() ends it while frozen (cgroup v${driver.version})`, async () => {
  const cg = create('freeze', { pids: 16 });
  const shell = runIn(cg, 'while :; do :; done');
  await eventually(() => cg.pids().includes(shell.pid!), 10_000, 'the shell to join');
  await eventually(() => cg.usage().cpuUsageUsec > 20_000, 10_000, 'the loop to burn CPU');
  assert.equal(await cg.freeze(), true);
  if (driver.version === 1) assert.equal(read(`${dirOf(cg, 'freezer.state')}/freezer.state`), 'FROZEN');
  else assert.match(read(`${dirOf(cg, 'cgroup.events')}/cgroup.events`), /^frozen 1$/m);
  const frozenCpu = await cpuOver(cg, 500);
  assert.ok(frozenCpu < 20_000, `${frozenCpu} us of CPU in 500 ms while frozen`);
  cg.thaw();
  const before = cg.usage().cpuUsageUsec;
  await eventually(() => cg.usage().cpuUsageUsec > before + 20_000, 10_000, 'the loop to run again after thaw()');
  assert.equal(await cg.freeze(), true);
  const exit = once(shell, 'exit');
  await cg.kill();
  assert.deepEqual(cg.pids(), []);
  assert.deepEqual(await exit, [null, 'SIGKILL']);
  if (driver.version === 1) assert.equal(read(`${dirOf(cg, 'freezer.state')}/freezer.state`), 'THAWED', 'the kill thawed the cgroup (v1 delivers SIGKILL to a frozen task only then)');
});

const unified = existsSync(UNIFIED) && cgroupVersionAt(UNIFIED) === 2;

test('v2 on the real (controller-less) cgroup2 mount: detected by magic; create refuses without writing anything', { skip: !unified && 'no cgroup2 mount at /sys/fs/cgroup/unified' }, () => {
  const v2 = detectCgroupDriver({ root: ROOT, mountRoot: UNIFIED });
  assert.equal(v2.version, 2);
  const before = read(`${UNIFIED}/cgroup.subtree_control`);
  assert.throws(() => v2.create('x', {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_UNSUPPORTED' && /memory/.test(e.message));
  assert.equal(existsSync(`${UNIFIED}${ROOT}`), false);
  assert.equal(read(`${UNIFIED}/cgroup.subtree_control`), before);
});

for (const mode of ['cgroup.kill', 'freeze, SIGKILL, thaw'] as const) {
  test(`v2 kill on the real kernel via ${mode}, racing a fork loop; destroy removes the directory`, { skip: !unified && 'no cgroup2 mount' }, async () => {
    const parent = `${UNIFIED}${ROOT}`;
    const dir = `${parent}/${mode === 'cgroup.kill' ? 'kill' : 'freeze'}`;
    if (!existsSync(parent)) mkdirSync(parent);
    mkdirSync(dir);
    // The freeze path is for kernels before 5.14: hide cgroup.kill to take it here.
    const fs = mode === 'cgroup.kill' ? realFs : { ...realFs, exists: (p: string) => !p.endsWith('/cgroup.kill') && realFs.exists(p) };
    const cg = new CgroupV2Group(fs, 'k', dir);
    try {
      const shell = runIn(cg, 'while :; do /bin/true & sleep 30 & done');
      await eventually(() => cg.pids().length >= 20, 10_000, 'the fork loop to get going');
      await cg.kill();
      assert.deepEqual(cg.pids(), []);
      await sleep(100);
      assert.deepEqual(cg.pids(), []);
      if (shell.signalCode === null) await once(shell, 'exit');
      assert.equal(shell.signalCode, 'SIGKILL');
      if (mode !== 'cgroup.kill') assert.equal(read(`${dir}/cgroup.freeze`), '0', 'thawed again');
      await cg.destroy();
      assert.equal(existsSync(dir), false);
    } finally {
      await cg.destroy().catch(() => {});
      try {
        rmdirSync(parent);
      } catch {
        // the other mode's cgroup may still be there
      }
    }
  });
}

for (const mode of ['cgroup.kill', 'freeze, SIGKILL, thaw'] as const) {
  test(`v2 freeze on the real kernel: "frozen 1" in cgroup.events, no CPU while frozen, killed while frozen via ${mode}`, { skip: !unified && 'no cgroup2 mount' }, async () => {
    const parent = `${UNIFIED}${ROOT}`;
    const dir = `${parent}/${mode === 'cgroup.kill' ? 'frozen-kill' : 'frozen-freeze'}`;
    if (!existsSync(parent)) mkdirSync(parent);
    mkdirSync(dir);
    const fs = mode === 'cgroup.kill' ? realFs : { ...realFs, exists: (p: string) => !p.endsWith('/cgroup.kill') && realFs.exists(p) };
    const cg = new CgroupV2Group(fs, 'f', dir);
    try {
      const shell = runIn(cg, 'while :; do :; done');
      await eventually(() => cg.pids().includes(shell.pid!), 10_000, 'the shell to join');
      await eventually(() => cg.usage().cpuUsageUsec > 20_000, 10_000, 'the loop to burn CPU');
      assert.equal(await cg.freeze(), true);
      assert.match(read(`${dir}/cgroup.events`), /^frozen 1$/m);
      const frozenCpu = await cpuOver(cg, 500);
      assert.ok(frozenCpu < 20_000, `${frozenCpu} us of CPU in 500 ms while frozen`);
      cg.thaw();
      assert.match(read(`${dir}/cgroup.events`), /^frozen 0$/m);
      const before = cg.usage().cpuUsageUsec;
      await eventually(() => cg.usage().cpuUsageUsec > before + 20_000, 10_000, 'the loop to run again after thaw()');
      assert.equal(await cg.freeze(), true);
      const exit = once(shell, 'exit');
      await cg.kill();
      assert.deepEqual(cg.pids(), []);
      assert.deepEqual(await exit, [null, 'SIGKILL']);
      cg.thaw();
      assert.equal(read(`${dir}/cgroup.freeze`), '0');
      await cg.destroy();
      assert.equal(existsSync(dir), false);
    } finally {
      await cg.destroy().catch(() => {});
      try {
        rmdirSync(parent);
      } catch {
        // the other mode's cgroup may still be there
      }
    }
  });
}

test('nothing is left under the test root in any hierarchy', async () => {
  for (const cg of made) await cg.destroy();
  assert.deepEqual(driver.list(), []);
  driver.removeRoot();
  for (const d of [...rootDirs(), `${UNIFIED}${ROOT}`]) assert.equal(existsSync(d), false, `${d} remains: ${existsSync(d) ? readdirSync(d) : ''}`);
});
