/**
 * Seeds (worker/engine/seeds.ts) against the real kernel: a container made from a parked
 * seed still gets its own limits and namespaces; gc and close leave nothing of them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { killPid, runToEnd, testEngine, type ContainerRun, type TestEngine } from '../../support/engine.js';
import type { ContainerSpec } from '../../../worker/engine/spec.js';
import { Engine } from '../../../worker/engine/engine.js';
import { limitsDiff, isLiveSeed } from '../../../worker/engine/seeds.js';
import type { Container } from '../../../worker/engine/container.js';
import { eventually } from '../../support/eventually.js';

let te: TestEngine;
before(async () => {
  te = await testEngine('seeds');
});
after(async () => {
  await te.cleanup();
});

const v1 = () => te.engine.cgroups.version === 1;


function run(engine: Engine, args: string[], extra: Partial<ContainerSpec> = {}, inspect?: (c: Container) => void): Promise<ContainerRun> {
  return runToEnd(engine, { ...extra, rootfs: { layers: te.layers }, process: { args: ['/probe', ...args] } }, inspect);
}

/**
 * Two creates make the pool fill itself with seeds like the latest request; waits until
 * it is full and they are all parked. (Waiting only for some parked seed let a test see a
 * seed left from before while the refill after its creates was still to come: 1 in ~30
 * runs, that refill then parked a seed the test had not counted.)
 */
async function primed(engine: Engine, extra: Partial<ContainerSpec> = {}): Promise<void> {
  await run(engine, ['true'], extra);
  await run(engine, ['true'], extra);
  const seeds = engine.seeds!;
  // A seed's pid comes from its monitor and "seeded" from its init, in either order.
  await eventually(() => seeds.parked.length === seeds.size && seeds.parked.every((s) => s.ready && s.pid > 0), 10_000, 'parked seeds');
}

/** Exited (reaped, or a zombie about to be). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z';
  } catch {
    return true;
  }
}

/** Counts the seeds that creates take. */
function countTakes(engine: Engine): { taken: number } {
  const counter = { taken: 0 };
  const pool = engine.seeds!;
  const take = pool.take.bind(pool);
  pool.take = (...a) => {
    const s = take(...a);
    if (s) counter.taken++;
    return s;
  };
  return counter;
}

test('limitsDiff writes what differs and unsets what the container did not ask for', () => {
  assert.deepEqual(limitsDiff({ pids: 64, memoryBytes: 1 << 26 }, { pids: 64, memoryBytes: 1 << 26 }), {});
  assert.deepEqual(limitsDiff({ pids: 64 }, { pids: 16 }), { pids: 16 });
  assert.deepEqual(limitsDiff({ pids: 64, memoryBytes: 1 << 26 }, {}), { pids: -1, memoryBytes: -1 });
  assert.deepEqual(limitsDiff({}, { cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 }), { cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 });
  // A new period is written with its quota, even an unchanged one (the kernel checks them together).
  assert.deepEqual(limitsDiff({ cpuQuotaUs: 10_000, cpuPeriodUs: 100_000 }, { cpuQuotaUs: 10_000, cpuPeriodUs: 50_000 }), { cpuPeriodUs: 50_000, cpuQuotaUs: 10_000 });
  // A quota change zeroes the burst first (the kernel refuses burst > quota): the wanted burst goes along.
  assert.deepEqual(limitsDiff({ cpuQuotaUs: 100_000 }, { cpuQuotaUs: 20_000, cpuBurstUs: 20_000 }), { cpuQuotaUs: 20_000, cpuBurstUs: 20_000 });
  assert.deepEqual(limitsDiff({ cpuQuotaUs: 20_000, cpuBurstUs: 20_000 }, { cpuQuotaUs: 20_000 }), { cpuBurstUs: 0 });
});

test('a container from a seed gets its own, different limits, enforced', { skip: !existsSync('/sys/fs/cgroup/pids') && 'cgroup v1 only' }, async (t) => {
  if (!v1()) return t.skip('seeds are made on cgroup v1 only');
  await primed(te.engine, { limits: { pids: 64, memoryBytes: 128 * 1024 * 1024 } });
  const takes = countTakes(te.engine);
  const seeded = te.engine.seeds!.parked[0]!;

  let pidsMax = '';
  let memLimit = '';
  const fork = await run(te.engine, ['forkbomb', '200'], { limits: { pids: 16, memoryBytes: 32 * 1024 * 1024 } }, (c) => {
    const root = te.engine.cgroups.root;
    pidsMax = readFileSync(`/sys/fs/cgroup/pids${root}/${c.id}/pids.max`, 'utf8').trim();
    memLimit = readFileSync(`/sys/fs/cgroup/memory${root}/${c.id}/memory.limit_in_bytes`, 'utf8').trim();
    assert.equal(c.pid, seeded.pid, 'the container\'s init is the parked seed');
  });
  assert.equal(takes.taken, 1, 'the create took a seed');
  assert.equal(pidsMax, '16');
  assert.equal(memLimit, String(32 * 1024 * 1024));
  assert.equal(fork.out.forkerr, 'EAGAIN');
  assert.ok(Number(fork.out.forked) <= 14, `forked ${fork.out.forked}`);

  await eventually(() => te.engine.seeds!.parked.some((s) => s.ready), 10_000, 'a parked seed');
  const oom = await run(te.engine, ['memhog', '256'], { limits: { memoryBytes: 32 * 1024 * 1024 } });
  assert.equal(takes.taken, 2);
  assert.equal(oom.result.oomKilled, true);
});

test('a container from a seed is alone in its namespaces', async (t) => {
  if (!v1()) return t.skip('seeds are made on cgroup v1 only');
  await primed(te.engine);
  const takes = countTakes(te.engine);
  const ps = await run(te.engine, ['ps']);
  assert.equal(ps.out.pid1, 'faasbox-init');
  assert.equal(ps.out.self, '2');
  assert.equal(ps.out.nprocs, '2');
  await eventually(() => te.engine.seeds!.parked.some((s) => s.ready), 10_000, 'a parked seed');
  const host = await run(te.engine, ['hostname'], { hostname: 'fn-seeded' });
  assert.equal(host.out.hostname, 'fn-seeded');
  await eventually(() => te.engine.seeds!.parked.some((s) => s.ready), 10_000, 'a parked seed');
  const ifaces = await run(te.engine, ['ifaces']);
  assert.deepEqual(ifaces.stdout.trim().split('\n'), ['iface=lo']);
  assert.equal(takes.taken, 3);
});

test('a dead seed is passed over; a container killed while parked in a seed is reported', async (t) => {
  if (!v1()) return t.skip('seeds are made on cgroup v1 only');
  await primed(te.engine);
  for (const s of te.engine.seeds!.parked) killPid(s.pid);
  await eventually(() => te.engine.seeds!.parked.length === 0, 10_000, 'dead seeds forgotten');
  const r = await run(te.engine, ['exit', '3']);
  assert.equal(r.result.exitCode, 3);

  await eventually(() => te.engine.seeds!.parked.some((s) => s.ready), 10_000, 'a parked seed');
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'true'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  await c.kill();
  assert.equal((await c.wait()).signal, 9);
  await c.delete();
});

test('gc spares a live engine\'s seeds, removes a dead engine\'s, and close leaves nothing', async (t) => {
  if (!v1()) return t.skip('seeds are made on cgroup v1 only');
  const engine = await Engine.open({ stateDir: te.engine.stateDir, cgroupRoot: `${te.engine.cgroups.root}-close` });
  try {
    await primed(engine);
    const seeds = engine.seeds!.parked.map((s) => ({ name: s.name, pid: s.pid }));
    assert.ok(seeds.every((s) => isLiveSeed(s.name)));
    // What a crashed engine would have left: a seed cgroup whose owner is gone.
    engine.cgroups.create('seed-999999999-1-0', {});
    assert.equal(isLiveSeed('seed-999999999-1-0'), false);
    const report = await engine.gc();
    assert.deepEqual(report.cgroups, ['seed-999999999-1-0']);
    assert.deepEqual(engine.cgroups.list().sort(), seeds.map((s) => s.name).sort());

    await engine.close();
    assert.deepEqual(engine.cgroups.list(), []);
    for (const s of seeds) await eventually(() => gone(s.pid), 10_000, `seed ${s.pid} gone`);
  } finally {
    await engine.close();
    await engine.gc({ all: true });
    engine.cgroups.removeRoot();
  }
});

test('gc of everything takes the engine\'s own seeds too', async (t) => {
  if (!v1()) return t.skip('seeds are made on cgroup v1 only');
  await primed(te.engine);
  const pids = te.engine.seeds!.parked.map((s) => s.pid);
  await te.engine.gc({ all: true });
  assert.equal(te.engine.seeds!.parked.length, 0);
  assert.deepEqual(te.engine.cgroups.list(), []);
  for (const pid of pids) await eventually(() => gone(pid), 10_000, `seed ${pid} gone`);
});

test('a container from a seed is frozen in the freezer hierarchy under its own name (the seed\'s freezer cgroup renamed with the rest)', async (t) => {
  if (!v1()) return t.skip('seeds are made on cgroup v1 only');
  await primed(te.engine);
  const takes = countTakes(te.engine);
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'spin', '600000'] }, limits: { cpus: 0.5 } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    assert.equal(takes.taken, 1, 'the create took a seed');
    c.start();
    await eventually(() => c.usage().cpuUsageUsec > 20_000, 10_000, 'the probe to spin');
    assert.equal(await c.freeze(), true);
    const state = `/sys/fs/cgroup/freezer${te.engine.cgroups.root}/${c.id}/freezer.state`;
    assert.equal(readFileSync(state, 'utf8').trim(), 'FROZEN');
    const a = c.usage().cpuUsageUsec;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(c.usage().cpuUsageUsec - a < 20_000, `${c.usage().cpuUsageUsec - a} us of CPU in 300 ms while frozen`);
    c.thaw();
    assert.equal(readFileSync(state, 'utf8').trim(), 'THAWED');
  } finally {
    await c.delete();
  }
});
