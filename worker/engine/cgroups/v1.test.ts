/**
 * The v1 driver against fabricated v1 trees (cpu and cpuacct co-mounted here, unlike
 * this machine's real kernel, so both layouts get exercised: the real one runs in
 * test/worker/engine/cgroups.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { detectCgroupDriver, CgroupError } from './index.js';
import { fabricatedTrees } from '../../../test/support/fabricated.js';

const { tree: newTree, setup, sleeper } = fabricatedTrees(1);

const MB = 1024 * 1024;

test('detects v1 from the mount root (not cgroup2) and finds co-mounted controllers in mountinfo', () => {
  const { tree, driver } = setup();
  assert.equal(driver.version, 1);
  assert.equal(driver.root, '/faasbox');
  const cg = driver.create('c1', {});
  // memory, cpu+cpuacct (one hierarchy), pids, freezer; devices is not needed.
  assert.deepEqual(cg.procsFiles.map((p) => tree.rel(p)).sort(), [
    'cpu,cpuacct/faasbox/c1/cgroup.procs',
    'freezer/faasbox/c1/cgroup.procs',
    'memory/faasbox/c1/cgroup.procs',
    'pids/faasbox/c1/cgroup.procs',
  ]);
});

test('a missing controller is CGROUP_UNSUPPORTED, naming it', () => {
  const tree = newTree({ v1Mounts: { memory: ['memory'], cpu: ['cpu'], cpuacct: ['cpuacct'], pids: ['pids'] } });
  assert.throws(
    () => detectCgroupDriver({ mountRoot: tree.mountRoot, mountinfo: tree.mountinfo, fs: tree.fs }),
    (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_UNSUPPORTED' && /freezer/.test(e.message) && /hint: /.test(e.message),
  );
});

test('create writes memory (limit before memsw when lowering), swappiness, period before quota, pids', () => {
  const { tree, driver } = setup();
  driver.create('c1', { memoryBytes: 32 * MB, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, pids: 64 });
  assert.deepEqual(tree.writes, [
    { path: 'memory/faasbox/c1/memory.limit_in_bytes', value: String(32 * MB) },
    { path: 'memory/faasbox/c1/memory.memsw.limit_in_bytes', value: String(32 * MB) },
    { path: 'memory/faasbox/c1/memory.swappiness', value: '0' },
    { path: 'cpu,cpuacct/faasbox/c1/cpu.cfs_period_us', value: '100000' },
    { path: 'cpu,cpuacct/faasbox/c1/cpu.cfs_quota_us', value: '50000' },
    { path: 'pids/faasbox/c1/pids.max', value: '64' },
  ]);
  assert.equal(tree.read('memory/faasbox/c1/memory.memsw.limit_in_bytes').trim(), String(32 * MB));
});

test('raising the memory limit writes memsw first (the fabricated kernel refuses the other order)', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', { memoryBytes: 32 * MB });
  tree.writes.length = 0;
  cg.setLimits({ memoryBytes: 64 * MB });
  assert.deepEqual(tree.writes.map((w) => w.path.split('/').pop()), ['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes', 'memory.swappiness']);
  assert.equal(tree.read('memory/faasbox/c1/memory.limit_in_bytes').trim(), String(64 * MB));
  cg.setLimits({ memoryBytes: 16 * MB });
  assert.equal(tree.read('memory/faasbox/c1/memory.memsw.limit_in_bytes').trim(), String(16 * MB));
  // Unlimited is -1 on v1, and counts as raising.
  cg.setLimits({ memoryBytes: Infinity, cpuQuotaUs: -1, pids: Infinity });
  assert.deepEqual(tree.writesTo('limit_in_bytes').slice(-2), ['-1', '-1']);
  assert.deepEqual(tree.writesTo('cfs_quota_us'), ['-1']);
  assert.deepEqual(tree.writesTo('pids.max'), ['max']);
});

test('CFS burst: written after the quota; zeroed before a quota change only when it may be set', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', { cpuQuotaUs: 20_000, cpuPeriodUs: 100_000, cpuBurstUs: 20_000 });
  // A new cgroup's burst is 0: no zeroing write, and the burst comes after the quota.
  assert.deepEqual(tree.writes.map((w) => w.path.split('/').pop()), ['cpu.cfs_period_us', 'cpu.cfs_quota_us', 'cpu.cfs_burst_us']);
  tree.writes.length = 0;
  // Lowering the quota under the old burst: the burst goes to 0 first (the kernel refuses
  // burst > quota), then the new values.
  cg.setLimits({ cpuQuotaUs: 10_000, cpuBurstUs: 10_000 });
  assert.deepEqual(tree.writes.map((w) => `${w.path.split('/').pop()}=${w.value}`), ['cpu.cfs_burst_us=0', 'cpu.cfs_quota_us=10000', 'cpu.cfs_burst_us=10000']);
  tree.writes.length = 0;
  // A quota change without a burst leaves none.
  cg.setLimits({ cpuQuotaUs: 50_000 });
  assert.deepEqual(tree.writes.map((w) => `${w.path.split('/').pop()}=${w.value}`), ['cpu.cfs_burst_us=0', 'cpu.cfs_quota_us=50000']);
  // An opened cgroup's burst is unknown: zeroed before its quota changes.
  const opened = driver.open('c1')!;
  tree.writes.length = 0;
  opened.setLimits({ cpuQuotaUs: 30_000 });
  assert.deepEqual(tree.writes.map((w) => w.path.split('/').pop()), ['cpu.cfs_burst_us', 'cpu.cfs_quota_us']);
});

test('setLimits writes only what differs from the limits known; assume() makes limits known; a failed write makes them unknown', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', { memoryBytes: 32 * MB, cpuQuotaUs: 20_000, cpuPeriodUs: 100_000, pids: 64 });
  tree.writes.length = 0;
  cg.setLimits({ memoryBytes: 32 * MB, cpuQuotaUs: 20_000, cpuPeriodUs: 100_000, pids: 64 });
  assert.equal(tree.writes.length, 0, 'the same limits again: nothing written');
  cg.setLimits({ memoryBytes: 32 * MB, pids: 128 });
  assert.deepEqual(tree.writes.map((w) => w.path.split('/').pop()), ['pids.max']);

  // An opened cgroup knows nothing: everything given is written, until it is told.
  const opened = driver.open('c1')!;
  tree.writes.length = 0;
  opened.setLimits({ pids: 128 });
  assert.deepEqual(tree.writesTo('pids.max'), ['128']);
  opened.assume({ memoryBytes: 32 * MB });
  tree.writes.length = 0;
  opened.setLimits({ memoryBytes: 32 * MB, pids: 128 });
  assert.equal(tree.writes.length, 0);

  // A write that fails leaves its limits unknown, so the next call writes them again.
  const pidsMax = tree.abs('pids/faasbox/c1/pids.max');
  rmSync(pidsMax);
  mkdirSync(pidsMax);
  assert.throws(() => cg.setLimits({ pids: 32 }), (e: unknown) => e instanceof CgroupError);
  rmdirSync(pidsMax);
  writeFileSync(pidsMax, '128\n');
  tree.writes.length = 0;
  cg.setLimits({ pids: 128 });
  assert.deepEqual(tree.writesTo('pids.max'), ['128']);
});

test('CFS burst is skipped on kernels without the file (before 5.14)', () => {
  const { tree, driver } = setup();
  const cg = driver.create('old', { cpuQuotaUs: 20_000, cpuPeriodUs: 100_000 });
  rmSync(tree.abs('cpu,cpuacct/faasbox/old/cpu.cfs_burst_us'));
  cg.setLimits({ cpuQuotaUs: 20_000, cpuBurstUs: 20_000 });
  assert.deepEqual(tree.writesTo('cfs_burst_us'), []);
});

test('rootCpuUsec reads the whole subtree\'s cpuacct.usage (ns) as µs', () => {
  const { tree, driver } = setup();
  driver.create('c1', {});
  tree.set('cpu,cpuacct/faasbox/cpuacct.usage', '2500000\n');
  assert.equal(driver.rootCpuUsec(), 2500);
});

test('without swap accounting only memory.limit_in_bytes is written, and swappiness still turns swap off', () => {
  const { tree, driver } = setup({ memsw: false });
  driver.create('c1', { memoryBytes: 32 * MB });
  assert.deepEqual(tree.writes.map((w) => w.path), ['memory/faasbox/c1/memory.limit_in_bytes', 'memory/faasbox/c1/memory.swappiness']);
});

test('swappiness EINVAL (older kernels) is ignored; any other failure is a CgroupError with the path', () => {
  const { tree, driver } = setup();
  tree.failWrites.set('memory.swappiness', 'EINVAL');
  driver.create('c1', { memoryBytes: 32 * MB });
  tree.failWrites.set('memory.swappiness', 'EACCES');
  assert.throws(
    () => driver.create('c2', { memoryBytes: 32 * MB }),
    (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_IO' && e.path.endsWith('c2/memory.swappiness') && /EACCES/.test(e.message),
  );
  // The failed create left nothing behind in any hierarchy.
  assert.deepEqual(driver.list(), ['c1']);
});

test('a memory limit below what cannot be reclaimed (EBUSY) is CGROUP_BUSY', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  tree.failWrites.set('memory.limit_in_bytes', 'EBUSY');
  assert.throws(() => cg.setLimits({ memoryBytes: MB }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_BUSY');
  assert.throws(() => cg.setLimits({ pids: 1.5 }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_INVALID_LIMIT');
  assert.throws(() => cg.setLimits({ cpuPeriodUs: -1 }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_INVALID_LIMIT');
});

test('create of an existing cgroup is CGROUP_EXISTS, also when only one hierarchy has it, and leaves the others alone', () => {
  const { tree, driver } = setup();
  driver.create('c1', {});
  assert.throws(() => driver.create('c1', {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_EXISTS');
  // A crashed worker's leftover in the pids hierarchy only.
  tree.fs.mkdir(tree.abs('pids/faasbox/c2'));
  assert.throws(() => driver.create('c2', {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_EXISTS' && e.path.endsWith('pids/faasbox/c2'));
  assert.equal(tree.fs.exists(tree.abs('memory/faasbox/c2')), false, 'rolled back');
  assert.ok(tree.fs.exists(tree.abs('pids/faasbox/c2')), 'the leftover is not ours to remove here');
});

test('names must be one plain path component', () => {
  const { driver } = setup();
  for (const bad of ['', '..', 'a/b', '../x', '.hidden', 'a b']) {
    assert.throws(() => driver.create(bad, {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_INVALID_NAME', bad);
  }
  assert.throws(() => detectCgroupDriver({ root: '/', mountRoot: '/tmp', version: 1 }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_INVALID_NAME');
});

test('stats parse what the v1 kernel files say', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  const base = (c: string) => `${c}/faasbox/c1`;
  tree.set(`${base('cpu,cpuacct')}/cpuacct.usage`, '1234567890\n');
  tree.set(`${base('cpu,cpuacct')}/cpuacct.stat`, 'user 90\nsystem 25\n');
  tree.set(`${base('cpu,cpuacct')}/cpu.stat`, 'nr_periods 40\nnr_throttled 7\nthrottled_time 3500000\n');
  tree.set(`${base('memory')}/memory.usage_in_bytes`, '1048576\n');
  tree.set(`${base('memory')}/memory.max_usage_in_bytes`, '4194304\n');
  tree.set(`${base('memory')}/memory.oom_control`, 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
  tree.set(`${base('pids')}/pids.current`, '3\n');
  assert.deepEqual(cg.stats(), {
    cpuUsageUsec: 1234568,
    userUsec: 900_000,
    systemUsec: 250_000,
    memoryCurrentBytes: 1048576,
    memoryPeakBytes: 4194304,
    oomKills: 2,
    pidsCurrent: 3,
    throttledPeriods: 7,
    throttledUsec: 3500,
    ioReadBytes: 0,
    ioWriteBytes: 0,
  });
  // Nanosecond user/system split where the kernel offers it.
  tree.set(`${base('cpu,cpuacct')}/cpuacct.usage_user`, '1000000000\n');
  tree.set(`${base('cpu,cpuacct')}/cpuacct.usage_sys`, '234567890\n');
  const s = cg.stats();
  assert.equal(s.userUsec, 1_000_000);
  assert.equal(s.systemUsec, 234_568);
  assert.deepEqual(cg.usage(), { cpuUsageUsec: 1234568, memoryPeakBytes: 4194304 }, 'the cheap per-invocation read agrees');
});

test('resetPeak writes 0 to memory.max_usage_in_bytes', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  cg.resetPeak();
  assert.deepEqual(tree.writes.slice(-1), [{ path: 'memory/faasbox/c1/memory.max_usage_in_bytes', value: '0' }]);
});

test('usage and resetPeak keep their files open and still see every change', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  const usage = (c: string) => `${c}/faasbox/c1/cpuacct.usage`;
  const peak = 'memory/faasbox/c1/memory.max_usage_in_bytes';
  tree.set(usage('cpu,cpuacct'), '1000000\n');
  tree.set(peak, '2048\n');
  assert.deepEqual(cg.usage(), { cpuUsageUsec: 1000, memoryPeakBytes: 2048 });
  // Read again through the same descriptors: the kernel's (here, the tree's) new values.
  tree.set(usage('cpu,cpuacct'), '5000000\n');
  tree.set(peak, '4096\n');
  assert.deepEqual(cg.usage(), { cpuUsageUsec: 5000, memoryPeakBytes: 4096 });
  cg.resetPeak();
  cg.resetPeak();
  assert.deepEqual(tree.writesTo('memory.max_usage_in_bytes'), ['0', '0']);
});

test('list is the union over hierarchies; open finds partial leftovers; destroy removes every directory and is idempotent', async () => {
  const { tree, driver } = setup();
  driver.create('a', {});
  driver.create('b', {});
  tree.fs.mkdir(tree.abs('freezer/faasbox/partial'));
  tree.fs.mkdir(tree.abs('pids/faasbox/odd name'));
  assert.deepEqual(driver.list(), ['a', 'b', 'odd name', 'partial']);
  assert.equal(driver.open('nope'), undefined);
  assert.throws(() => driver.open('..'), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_INVALID_NAME');
  for (const name of driver.list()) await driver.open(name)!.destroy();
  assert.deepEqual(driver.list(), []);
  await driver.create('a', {}).destroy();
  const a = driver.create('a', {});
  await a.destroy();
  await a.destroy();
  driver.removeRoot();
  for (const h of ['memory', 'cpu,cpuacct', 'pids', 'freezer']) assert.equal(tree.fs.exists(tree.abs(`${h}/faasbox`)), false, h);
});

test('kill freezes, SIGKILLs every member, thaws, and resolves once the cgroup is empty', async () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  const kids = [sleeper(), sleeper()];
  // Members of different hierarchies: pids() is the union.
  tree.set('freezer/faasbox/c1/cgroup.procs', `${kids[0]!.pid}\n${kids[1]!.pid}\n`);
  tree.set('pids/faasbox/c1/cgroup.procs', `${kids[0]!.pid}\n`);
  assert.deepEqual(cg.pids().sort(), kids.map((k) => k.pid!).sort());
  const exits = kids.map((k) => once(k, 'exit'));
  await cg.kill();
  assert.deepEqual(cg.pids(), []);
  for (const e of await Promise.all(exits)) assert.deepEqual(e, [null, 'SIGKILL']);
  assert.deepEqual(tree.writesTo('freezer.state'), ['FROZEN', 'THAWED']);
  // Nothing to kill: no freezing either.
  await cg.kill();
  assert.deepEqual(tree.writesTo('freezer.state'), ['FROZEN', 'THAWED']);
});

test('freeze writes FROZEN to the freezer hierarchy and waits while the kernel reads FREEZING; thaw writes THAWED', async () => {
  const { tree, driver } = setup({ freezeLags: true });
  const cg = driver.create('c1', {});
  let frozen: boolean | undefined;
  const freezing = cg.freeze().then((v) => (frozen = v));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(tree.read('freezer/faasbox/c1/freezer.state').trim(), 'FREEZING');
  assert.equal(frozen, undefined, 'FREEZING is not frozen yet');
  tree.set('freezer/faasbox/c1/freezer.state', 'FROZEN\n');
  assert.equal(await freezing, true);
  cg.thaw();
  assert.deepEqual(tree.writesTo('freezer.state'), ['FROZEN', 'THAWED']);
  // A freeze that cannot complete is undone, not left FREEZING.
  await assert.rejects(cg.freeze(50), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_BUSY');
  assert.equal(tree.read('freezer/faasbox/c1/freezer.state').trim(), 'THAWED');
});

test('kill of a frozen cgroup SIGKILLs its members and leaves it thawed, so the kills land', async () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  const kid = sleeper();
  tree.set('freezer/faasbox/c1/cgroup.procs', `${kid.pid}\n`);
  assert.equal(await cg.freeze(), true);
  const exit = once(kid, 'exit');
  await cg.kill();
  assert.deepEqual(await exit, [null, 'SIGKILL']);
  assert.deepEqual(tree.writesTo('freezer.state'), ['FROZEN', 'FROZEN', 'THAWED']);
  assert.equal(tree.read('freezer/faasbox/c1/freezer.state').trim(), 'THAWED');
});

test('destroy refuses (CGROUP_BUSY) when a member cannot be removed, after retrying', async () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  tree.fs.mkdir(tree.abs('memory/faasbox/c1/child'));
  await assert.rejects(cg.destroy(), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_BUSY' && e.path.endsWith('memory/faasbox/c1'));
});

test('a nested root is made level by level in every hierarchy', () => {
  const { tree, driver } = setup({}, 'faasbox/worker-1/');
  assert.equal(driver.root, '/faasbox/worker-1');
  driver.create('c1', {});
  assert.ok(tree.fs.exists(tree.abs('memory/faasbox/worker-1/c1')));
  assert.ok(tree.fs.exists(tree.abs('cpu,cpuacct/faasbox/worker-1/c1')));
});

test('block I/O: blkio is joined where mounted; the four throttle files get "MAJ:MIN value" (0 removes); io_service_bytes is read back', () => {
  const { tree, driver } = setup({ v1Mounts: { memory: ['memory'], 'cpu,cpuacct': ['cpu', 'cpuacct'], pids: ['pids'], freezer: ['freezer'], blkio: ['blkio'] } });
  const cg = driver.create('c1', { io: { device: '254:0', readBps: 5_000_000, writeBps: 1_000_000 } });
  assert.ok(cg.procsFiles.map((p) => tree.rel(p)).includes('blkio/faasbox/c1/cgroup.procs'));
  assert.deepEqual(tree.writesTo('c1/blkio.throttle.read_bps_device'), ['254:0 5000000']);
  assert.deepEqual(tree.writesTo('c1/blkio.throttle.write_bps_device'), ['254:0 1000000']);
  assert.deepEqual(tree.writesTo('c1/blkio.throttle.read_iops_device'), ['254:0 0']);
  cg.setLimits({ io: { device: '254:0', readIops: 50 } });
  assert.deepEqual(tree.writesTo('c1/blkio.throttle.read_bps_device'), ['254:0 5000000', '254:0 0']);
  assert.deepEqual(tree.writesTo('c1/blkio.throttle.read_iops_device'), ['254:0 0', '254:0 50']);
  tree.set('blkio/faasbox/c1/blkio.throttle.io_service_bytes', '254:0 Read 52428800\n254:0 Write 8192\n254:0 Sync 0\n254:0 Async 52436992\n254:0 Discard 0\n254:0 Total 52436992\nTotal 52436992\n');
  assert.deepEqual(cg.ioUsage(), { ioReadBytes: 52428800, ioWriteBytes: 8192 });
  assert.equal(cg.stats().ioWriteBytes, 8192);
});

test('block I/O limits without a blkio hierarchy: CGROUP_UNSUPPORTED; blkio stays optional for everything else', () => {
  const { driver } = setup();
  assert.equal(driver.create('plain', { pids: 10 }).procsFiles.length, 4);
  assert.throws(() => driver.create('c1', { io: { device: '254:0', readBps: 1 } }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_UNSUPPORTED' && /blkio/.test(e.message));
});
