/**
 * The v2 driver, exercised ONLY against fabricated cgroup2 trees: this machine's kernel
 * offers its controllers through v1, and its cgroup2 mount (/sys/fs/cgroup/unified) has
 * no memory, cpu or pids controller. The real-kernel test (test/worker/engine/
 * cgroups.test.ts) covers the v2 kill/freeze paths on that empty hierarchy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cgroupVersionAt, CgroupError } from './index.js';
import { fabricatedTrees } from '../../../test/support/fabricated.js';

const { tree: newTree, setup, sleeper } = fabricatedTrees(2);

const MB = 1024 * 1024;

test('a fabricated tree is not cgroup2 by statfs magic (so tests must force the version)', () => {
  const tree = newTree();
  assert.equal(cgroupVersionAt(tree.mountRoot), 1);
  assert.throws(() => cgroupVersionAt(`${tree.mountRoot}/missing`), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_UNSUPPORTED');
});

test('create enables memory, cpu, pids (and io, offered here) at the mount root and in faasbox root, then writes the limits', () => {
  const { tree, driver } = setup();
  assert.equal(driver.version, 2);
  const cg = driver.create('c1', { memoryBytes: 32 * MB, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, pids: 64 });
  assert.deepEqual(cg.procsFiles.map((p) => tree.rel(p)), ['faasbox/c1/cgroup.procs']);
  assert.deepEqual(tree.writes, [
    { path: 'cgroup.subtree_control', value: '+io' },
    { path: 'cgroup.subtree_control', value: '+memory +cpu +pids' },
    { path: 'faasbox/cgroup.subtree_control', value: '+io' },
    { path: 'faasbox/cgroup.subtree_control', value: '+memory +cpu +pids' },
    { path: 'faasbox/c1/memory.max', value: String(32 * MB) },
    { path: 'faasbox/c1/memory.swap.max', value: '0' },
    { path: 'faasbox/c1/cpu.max', value: '50000 100000' },
    { path: 'faasbox/c1/pids.max', value: '64' },
  ]);
  // Already enabled: the second container writes no subtree_control.
  tree.writes.length = 0;
  driver.create('c2', {});
  assert.deepEqual(tree.writes, []);
});

test('only the missing controllers are enabled, and none are removed', () => {
  const { tree, driver } = setup();
  tree.set('cgroup.subtree_control', 'cpuset io memory\n');
  driver.create('c1', {});
  assert.deepEqual(tree.writesTo('cgroup.subtree_control'), ['+cpu +pids', '+io', '+memory +cpu +pids']);
  assert.equal(tree.read('cgroup.subtree_control').trim(), 'cpuset io memory cpu pids');
});

test('a controller the hierarchy lacks is CGROUP_UNSUPPORTED, with a hint', () => {
  const { tree, driver } = setup();
  tree.set('cgroup.controllers', 'cpu io memory\n');
  assert.throws(
    () => driver.create('c1', {}),
    (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_UNSUPPORTED' && /pids/.test(e.message) && /hint: .*delegate/.test(e.message),
  );
});

test('enabling fails when the cgroup holds processes (EBUSY): CGROUP_IO explaining the no-internal-processes rule', () => {
  const { tree, driver } = setup();
  tree.failWrites.set('faasbox/cgroup.subtree_control', 'EBUSY');
  assert.throws(() => driver.create('c1', {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_IO' && /holds processes/.test(e.message));
});

test('a root that holds the worker itself (a delegated unit): the worker moves to a leaf, then controllers are enabled', () => {
  const { tree, driver } = setup();
  mkdirSync(tree.abs('faasbox'));
  for (const f of ['cgroup.controllers', 'cgroup.subtree_control']) writeFileSync(tree.abs(`faasbox/${f}`), '');
  writeFileSync(tree.abs('faasbox/cgroup.controllers'), 'memory cpu pids\n');
  // The worker was started in the cgroup given to it, with someone else's process beside it.
  const other = sleeper();
  writeFileSync(tree.abs('faasbox/cgroup.procs'), `${process.pid}\n${other.pid}\n`);
  assert.throws(() => driver.create('c1', {}), (e: unknown) => e instanceof CgroupError && /holds processes/.test(e.message), "another's process is not moved");
  assert.equal(tree.read('faasbox/.worker/cgroup.procs'), `${process.pid}\n`, 'the worker itself has moved');
  writeFileSync(tree.abs('faasbox/cgroup.procs'), '');
  driver.create('c1', { pids: 8 });
  assert.deepEqual(tree.writesTo('faasbox/cgroup.subtree_control'), ['+memory +cpu +pids']);
  assert.equal(tree.read('faasbox/c1/pids.max'), '8\n');
  assert.deepEqual(driver.list(), ['c1'], 'the leaf is not a container: gc leaves it alone');
});

test('a nested root: levels faasbox creates get controllers; an existing level it did not create is only checked', () => {
  const { tree, driver } = setup({}, '/system.slice/faasbox');
  // Someone else's cgroup, without the controllers delegated to its children.
  mkdirSync(tree.abs('system.slice'));
  writeFileSync(tree.abs('system.slice/cgroup.controllers'), 'memory cpu pids\n');
  writeFileSync(tree.abs('system.slice/cgroup.subtree_control'), 'memory\n');
  assert.throws(() => driver.create('c1', {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_UNSUPPORTED' && e.path.endsWith('system.slice/cgroup.subtree_control'));
  assert.deepEqual(tree.writesTo('system.slice/cgroup.subtree_control'), [], 'never written');
  writeFileSync(tree.abs('system.slice/cgroup.subtree_control'), 'memory cpu pids\n');
  driver.create('c1', { pids: 10 });
  assert.deepEqual(tree.writesTo('system.slice/cgroup.subtree_control'), []);
  // io is not offered below system.slice here (its controllers list lacks it): not asked for.
  assert.deepEqual(tree.writesTo('system.slice/faasbox/cgroup.subtree_control'), ['+memory +cpu +pids']);

  const fresh = setup({}, '/a/b');
  fresh.driver.create('c1', {});
  assert.deepEqual(
    fresh.tree.writes.filter((w) => w.path.endsWith('subtree_control')).map((w) => w.path),
    // Each level twice: the optional io (best effort), then the controllers faasbox needs.
    ['cgroup.subtree_control', 'cgroup.subtree_control', 'a/cgroup.subtree_control', 'a/cgroup.subtree_control', 'a/b/cgroup.subtree_control', 'a/b/cgroup.subtree_control'],
  );
});

test('cpu.max keeps the half that is not given; unlimited is "max"', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', { cpuQuotaUs: 20_000, cpuPeriodUs: 50_000 });
  cg.setLimits({ cpuQuotaUs: 30_000 });
  cg.setLimits({ cpuPeriodUs: 100_000 });
  cg.setLimits({ cpuQuotaUs: Infinity, memoryBytes: -1, pids: Infinity });
  assert.deepEqual(tree.writesTo('cpu.max'), ['20000 50000', '30000 50000', '30000 100000', 'max 100000']);
  assert.deepEqual(tree.writesTo('memory.max'), ['max']);
  assert.deepEqual(tree.writesTo('pids.max'), ['max']);
});

test('cpu.max.burst: written after cpu.max, zeroed first when the quota changes under a burst', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', { cpuQuotaUs: 20_000, cpuPeriodUs: 100_000, cpuBurstUs: 20_000 });
  assert.deepEqual(tree.writes.filter((w) => w.path.includes('cpu.max')).map((w) => `${w.path.split('/').pop()}=${w.value}`), ['cpu.max=20000 100000', 'cpu.max.burst=20000']);
  tree.writes.length = 0;
  cg.setLimits({ cpuQuotaUs: 10_000, cpuBurstUs: 5_000 });
  assert.deepEqual(tree.writes.map((w) => `${w.path.split('/').pop()}=${w.value}`), ['cpu.max.burst=0', 'cpu.max=10000 100000', 'cpu.max.burst=5000']);
});

test('rootCpuUsec reads usage_usec of the root\'s cpu.stat', () => {
  const { tree, driver } = setup();
  driver.create('c1', {});
  tree.set('faasbox/cpu.stat', 'usage_usec 4200\nuser_usec 4000\nsystem_usec 200\n');
  assert.equal(driver.rootCpuUsec(), 4200);
});

test('without swap support there is no memory.swap.max to write', () => {
  const { tree, driver } = setup({ swap: false });
  driver.create('c1', { memoryBytes: 32 * MB });
  assert.deepEqual(tree.writesTo('memory.swap.max'), []);
  assert.deepEqual(tree.writesTo('memory.max'), [String(32 * MB)]);
});

test('a failing limit removes the new cgroup again', () => {
  const { tree, driver } = setup();
  tree.failWrites.set('pids.max', 'EINVAL');
  assert.throws(() => driver.create('c1', { pids: 5 }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_IO' && e.path.endsWith('c1/pids.max'));
  assert.deepEqual(driver.list(), []);
  tree.failWrites.clear();
  driver.create('c1', {});
  assert.throws(() => driver.create('c1', {}), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_EXISTS');
});

test('stats parse cpu.stat, memory.events, memory.peak', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  tree.set('faasbox/c1/cpu.stat', 'usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 9\nnr_throttled 4\nthrottled_usec 700\n');
  tree.set('faasbox/c1/memory.current', '1000\n');
  tree.set('faasbox/c1/memory.peak', '9000\n');
  tree.set('faasbox/c1/memory.events', 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n');
  tree.set('faasbox/c1/pids.current', '2\n');
  assert.deepEqual(cg.stats(), {
    cpuUsageUsec: 5000,
    userUsec: 3000,
    systemUsec: 2000,
    memoryCurrentBytes: 1000,
    memoryPeakBytes: 9000,
    oomKills: 1,
    pidsCurrent: 2,
    throttledPeriods: 4,
    throttledUsec: 700,
    ioReadBytes: 0,
    ioWriteBytes: 0,
  });
  assert.deepEqual(cg.usage(), { cpuUsageUsec: 5000, memoryPeakBytes: 9000 }, 'the cheap per-invocation read agrees');
});

test('usage keeps cpu.stat open and still sees every change', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  tree.set('faasbox/c1/cpu.stat', 'usage_usec 1000\nuser_usec 600\nsystem_usec 400\n');
  assert.equal(cg.usage().cpuUsageUsec, 1000);
  // Read again through the same descriptor: the kernel's (here, the tree's) new value.
  tree.set('faasbox/c1/cpu.stat', 'usage_usec 25000\nuser_usec 600\nsystem_usec 400\n');
  assert.equal(cg.usage().cpuUsageUsec, 25000);
});

test('resetPeak resets memory.peak through one open file and reads the peak back through it', async () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  tree.set('faasbox/c1/memory.peak', '9000\n');
  tree.set('faasbox/c1/memory.current', '1000\n');
  cg.resetPeak();
  assert.equal(cg.stats().memoryPeakBytes, 1000);
  tree.set('faasbox/c1/memory.current', '3000\n');
  assert.equal(cg.stats().memoryPeakBytes, 3000);
  tree.set('faasbox/c1/memory.current', '2000\n');
  cg.resetPeak();
  assert.equal(cg.stats().memoryPeakBytes, 2000);
  assert.equal(tree.peakResets.get('faasbox/c1/memory.peak'), 2);
  await cg.destroy();
});

test('where memory.peak is read-only (before 6.12) resetPeak does nothing and the peak is the lifetime one', () => {
  const { tree, driver } = setup({ peakWritable: false });
  const cg = driver.create('c1', {});
  tree.set('faasbox/c1/memory.peak', '9000\n');
  tree.set('faasbox/c1/memory.current', '1000\n');
  cg.resetPeak();
  assert.equal(cg.stats().memoryPeakBytes, 9000);
});

test('kill writes cgroup.kill and resolves when the members are gone', async () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  const kid = sleeper();
  tree.set('faasbox/c1/cgroup.procs', `${kid.pid}\n`);
  assert.deepEqual(cg.pids(), [kid.pid]);
  const exit = once(kid, 'exit');
  await cg.kill();
  assert.deepEqual(await exit, [null, 'SIGKILL']);
  assert.deepEqual(cg.pids(), []);
  assert.deepEqual(tree.writesTo('cgroup.kill'), ['1']);
  assert.deepEqual(tree.writesTo('cgroup.freeze'), []);
});

test('without cgroup.kill (before 5.14) kill freezes, SIGKILLs, thaws', async () => {
  const { tree, driver } = setup({ cgroupKill: false });
  const cg = driver.create('c1', {});
  const kids = [sleeper(), sleeper()];
  tree.set('faasbox/c1/cgroup.procs', kids.map((k) => `${k.pid}\n`).join(''));
  const exits = kids.map((k) => once(k, 'exit'));
  await cg.kill();
  for (const e of await Promise.all(exits)) assert.deepEqual(e, [null, 'SIGKILL']);
  assert.deepEqual(tree.writesTo('cgroup.freeze'), ['1', '0']);
});

test('freeze writes cgroup.freeze 1 and resolves only once cgroup.events says "frozen 1"; thaw writes 0', async () => {
  const { tree, driver } = setup({ freezeLags: true });
  const cg = driver.create('c1', {});
  let frozen: boolean | undefined;
  const freezing = cg.freeze().then((v) => (frozen = v));
  await new Promise((r) => setTimeout(r, 30));
  // cgroup.freeze holds what was asked; the kernel reports the tasks stopped in cgroup.events.
  assert.equal(frozen, undefined, 'freeze() waited for the kernel');
  tree.set('faasbox/c1/cgroup.events', 'populated 1\nfrozen 1\n');
  assert.equal(await freezing, true);
  cg.thaw();
  assert.deepEqual(tree.writesTo('cgroup.freeze'), ['1', '0']);
});

test('a thaw while the freeze still waits ends the wait at once (false); a freeze that never completes thaws again and is CGROUP_BUSY', async () => {
  const { tree, driver } = setup({ freezeLags: true });
  const cg = driver.create('c1', {});
  const freezing = cg.freeze();
  cg.thaw();
  assert.equal(await freezing, false);
  await assert.rejects(cg.freeze(50), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_BUSY' && /not frozen within 50 ms/.test(e.message));
  assert.deepEqual(tree.writesTo('cgroup.freeze'), ['1', '0', '1', '0']);
});

test('a frozen cgroup is killed through cgroup.kill and its freeze is undone by thaw', async () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', {});
  const kid = sleeper();
  tree.set('faasbox/c1/cgroup.procs', `${kid.pid}\n`);
  assert.equal(await cg.freeze(), true);
  const exit = once(kid, 'exit');
  await cg.kill();
  assert.deepEqual(await exit, [null, 'SIGKILL']);
  cg.thaw();
  assert.deepEqual(tree.writesTo('cgroup.kill'), ['1']);
  assert.deepEqual(tree.writesTo('cgroup.freeze'), ['1', '0']);
});

test('list, open, destroy (idempotent), removeRoot', async () => {
  const { tree, driver } = setup();
  driver.create('b', {});
  driver.create('a', {});
  assert.deepEqual(driver.list(), ['a', 'b']);
  assert.equal(driver.open('zzz'), undefined);
  const kid = sleeper();
  tree.set('faasbox/a/cgroup.procs', `${kid.pid}\n`);
  const exit = once(kid, 'exit');
  for (const n of driver.list()) await driver.open(n)!.destroy();
  // The member left the cgroup when it died; Node may reap it a little later.
  assert.deepEqual(await exit, [null, 'SIGKILL'], 'destroy killed the member first');
  await driver.open('zzz')?.destroy();
  assert.deepEqual(driver.list(), []);
  driver.removeRoot();
  driver.removeRoot();
  assert.equal(tree.fs.exists(tree.abs('faasbox')), false);
});

test('block I/O: io is enabled where offered; io.max gets every key (max for none); io.stat is summed over devices', () => {
  const { tree, driver } = setup();
  const cg = driver.create('c1', { io: { device: '254:0', readBps: 5_000_000, writeIops: 100 } });
  assert.match(tree.read('faasbox/cgroup.subtree_control'), /\bio\b/);
  assert.deepEqual(tree.writesTo('c1/io.max'), ['254:0 rbps=5000000 wbps=max riops=max wiops=100']);
  // Unchanged: not written again; dropped at specialisation: back to max.
  cg.setLimits({ io: { device: '254:0', readBps: 5_000_000, writeIops: 100 } });
  cg.setLimits({ io: { device: '254:0' } });
  assert.deepEqual(tree.writesTo('c1/io.max').slice(1), ['254:0 rbps=max wbps=max riops=max wiops=max']);
  tree.set('faasbox/c1/io.stat', '254:0 rbytes=52428800 wbytes=4096 rios=400 wios=1 dbytes=0 dios=0\n253:0 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n');
  assert.deepEqual(cg.ioUsage(), { ioReadBytes: 52428900, ioWriteBytes: 4096 });
  assert.equal(cg.stats().ioReadBytes, 52428900);
  assert.throws(() => cg.setLimits({ io: { device: 'vda', readBps: 1 } }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_INVALID_LIMIT');
});

test('block I/O limits where the io controller is not offered: CGROUP_UNSUPPORTED with a hint; other limits still work', () => {
  const { tree, driver } = setup();
  tree.set('cgroup.controllers', 'cpuset cpu memory pids\n');
  assert.ok(driver.create('plain', { pids: 10 }));
  assert.throws(() => driver.create('c1', { io: { device: '254:0', readBps: 1 } }), (e: unknown) => e instanceof CgroupError && e.code === 'CGROUP_UNSUPPORTED' && /\+io/.test(e.message));
});
