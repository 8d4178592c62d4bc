/**
 * The Pool against a fake instance factory: no root, no kernel. Each fake records the
 * limits it was booted and set to, and its loads; the pool's choices and transitions are
 * what is tested.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pool, NoCapacityError, type FunctionTarget } from './pool.js';
import type { InstanceFactory, OwnBoot, PooledInstance } from './instances.js';
import type { NetworkSpec } from '../engine/spec.js';
import { move, SlotStateError, startingSlot, specialise } from './slot.js';
import { functionLimits, stemLimits, type ContainerLimits, type FunctionLimits } from '../instance/specconv.js';

let ids = 0;

class FakeInstance implements PooledInstance {
  readonly id = `fake-${++ids}`;
  alive = true;
  destroyed = false;
  killed = false;
  loads: string[] = [];
  writes: Partial<ContainerLimits>[] = [];
  /** Every step in order: 'network', 'limits', 'load:<fn>' (what the function's code could see first). */
  steps: string[] = [];
  network: NetworkSpec | undefined;
  private exit!: () => void;
  readonly exited = new Promise<void>((r) => (this.exit = r));
  constructor(
    public limits: FunctionLimits,
    readonly own: OwnBoot = {},
  ) {
    this.network = own.network;
  }
  setLimits(part: Partial<ContainerLimits>, to: FunctionLimits): void {
    this.writes.push(part);
    this.steps.push('limits');
    this.limits = to;
  }
  setNetwork(spec: NetworkSpec): undefined {
    if (this.network?.mode !== 'bridge') throw new Error('a none container cannot take bridge mode');
    this.network = spec;
    this.steps.push('network');
    return undefined;
  }
  beginLoad(fnKey: string): Promise<void> {
    this.loads.push(fnKey);
    this.steps.push(`load:${fnKey}`);
    // A load takes a little while, as a real one does: the lease comes back before it is done.
    return new Promise((r) => setTimeout(r, 5));
  }
  wake(): number | undefined {
    return undefined;
  }
  freezeAfter(): void {}
  thawIfKilled(): boolean {
    return false;
  }
  async kill(): Promise<void> {
    this.killed = true;
  }
  async destroy(): Promise<void> {
    this.destroyed = true;
    this.die();
  }
  die(): void {
    this.alive = false;
    this.exit();
  }
}

class FakeFactory implements InstanceFactory<FakeInstance> {
  booted: FakeInstance[] = [];
  boots: { runtime: string; limits: FunctionLimits; warmUp: boolean }[] = [];
  owns: OwnBoot[] = [];
  async boot(runtime: string, limits: FunctionLimits, warmUp: boolean, own: OwnBoot = {}): Promise<FakeInstance> {
    this.boots.push({ runtime, limits, warmUp });
    this.owns.push(own);
    const inst = new FakeInstance(limits, own);
    this.booted.push(inst);
    return inst;
  }
}

function target(name: string, over: { memoryMb?: number; pidsLimit?: number; diskMb?: number; isolation?: 'reuse' | 'fresh'; network?: NetworkSpec } = {}): FunctionTarget {
  const memoryMb = over.memoryMb ?? 128;
  const limits = functionLimits({ memoryMb, cpu: Math.round((memoryMb * 1000) / 1769), pidsLimit: over.pidsLimit, diskMb: over.diskMb });
  return {
    key: `${name}@v1`,
    name,
    runtime: 'nodejs20',
    memoryMb,
    limits,
    isolation: over.isolation ?? 'reuse',
    codeDir: `/code/${name}`,
    entry: 'index.mjs',
    handler: 'default',
    env: {},
    loadTimeoutMs: 10_000,
    ...(over.network ? { network: over.network } : {}),
  };
}

function pool(over: { budgetMb?: number; enabled?: boolean; bridgeStems?: boolean; minStems?: number } = {}) {
  const factory = new FakeFactory();
  const p = new Pool<FakeInstance>({
    instances: factory,
    budgetMb: over.budgetMb ?? 1024,
    enabled: over.enabled ?? true,
    sizing: { minStems: over.minStems ?? 0 },
    freezeGraceMs: 0,
    log: () => {},
    bridgeStems: over.bridgeStems ?? false,
  });
  return { p, factory };
}

/** A stem cell of 128 MB booted into the pool as the background refill would. */
async function withStem(p: Pool<FakeInstance>): Promise<void> {
  await p.bootStem({ runtime: 'nodejs20', memoryMb: 128 });
}

test('no container at all: a cold boot with the function\'s limits at the boot CPU, then its load', async () => {
  const { p, factory } = pool();
  const t = target('f', { pidsLimit: 20, diskMb: 16 });
  const lease = await p.acquire(t);
  await lease.loading;
  assert.equal(lease.startKind, 'cold');
  assert.equal(factory.boots.length, 1);
  assert.deepEqual(factory.boots[0], { runtime: 'nodejs20', limits: { ...t.limits, cpus: 1, cpuBurst: 0 }, warmUp: false });
  assert.deepEqual(lease.instance.loads, ['f@v1']);
  // Only the CPU changes after the boot; pids and disk were the function's from the start.
  assert.deepEqual(lease.instance.writes, [{ cpus: t.limits.cpus, cpuBurst: t.limits.cpus }]);
  assert.equal(lease.slot.state, 'busy');
  assert.equal(lease.slot.kind, 'function');
  await p.close();
});

test('a stem cell is specialised: limits that differ are written before the load, and the slot becomes the function\'s', async () => {
  const { p, factory } = pool();
  await withStem(p);
  const stem = factory.booted[0]!;
  assert.deepEqual(stem.limits, stemLimits(128, 1));
  const t = target('g', { pidsLimit: 30 });
  const lease = await p.acquire(t);
  assert.equal(lease.startKind, 'specialized');
  assert.equal(lease.instance, stem);
  assert.equal(lease.slot.state, 'specialising');
  await lease.loading;
  assert.equal(lease.slot.state, 'busy');
  assert.deepEqual(stem.writes, [{ pids: 30, cpus: t.limits.cpus, cpuBurst: t.limits.cpus }]);
  assert.equal(lease.slot.fn, 'g@v1');
  assert.equal(factory.boots.length, 1, 'no boot for the invocation');
  assert.equal(p.counters.specializations, 1);
  await p.close();
});

test('released back to warm, the next invocation of the same version takes it again', async () => {
  const { p, factory } = pool();
  const t = target('h');
  const first = await p.acquire(t);
  await first.loading;
  await p.release(first, true);
  assert.equal(first.slot.state, 'idle');
  assert.equal(first.slot.uses, 1);
  const second = await p.acquire(t);
  assert.equal(second.startKind, 'warm');
  assert.equal(second.instance, first.instance);
  assert.equal(second.loading, undefined);
  assert.equal(factory.boots.length, 1);
  await p.release(second, true);
  await p.close();
});

test('fresh isolation: a used container is killed at once and never handed out again', async () => {
  const { p, factory } = pool();
  const t = target('once', { isolation: 'fresh' });
  const first = await p.acquire(t);
  await first.loading;
  await p.release(first, true);
  assert.equal(first.instance.killed, true);
  const second = await p.acquire(t);
  assert.equal(second.startKind, 'cold');
  assert.notEqual(second.instance, first.instance);
  assert.equal(factory.boots.length, 2);
  await p.release(second, true);
  await p.close();
});

test('an unhealthy release removes the container', async () => {
  const { p } = pool();
  const lease = await p.acquire(target('sick'));
  await lease.loading;
  await p.release(lease, false);
  assert.equal(lease.instance.destroyed, true);
  assert.equal(p.slots().filter((x) => x.fn === 'sick@v1').length, 0);
  await p.close();
});

test('a warm container whose runtime died while idle is removed', async () => {
  const { p } = pool();
  const lease = await p.acquire(target('dies'));
  await lease.loading;
  await p.release(lease, true);
  lease.instance.die();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(p.slots().filter((x) => x.fn === 'dies@v1').length, 0, JSON.stringify(p.slots()));
  assert.equal(lease.instance.destroyed, true);
  await p.close();
});

test('every container busy and the budget spent: an invocation waits for a release, then gets one', async () => {
  const { p } = pool({ budgetMb: 128 });
  const a = await p.acquire(target('a'));
  await a.loading;
  const waiting = p.acquire(target('b'), 5000);
  await new Promise((r) => setTimeout(r, 20));
  // Released to idle, a's container is evicted to make room for b's cold boot.
  await p.release(a, true);
  const b = await waiting;
  await b.loading;
  assert.equal(b.startKind, 'cold');
  assert.equal(a.instance.destroyed, true);
  await p.release(b, true);
  await p.close();
});

test('...and with nothing released within its wait, NoCapacityError', async () => {
  const { p } = pool({ budgetMb: 128 });
  const a = await p.acquire(target('a'));
  await a.loading;
  await assert.rejects(p.acquire(target('b'), 50), NoCapacityError);
  assert.equal(p.demandReport().functions['b@v1']?.inflight, 0, 'the gave-up invocation is not counted in flight');
  await p.release(a, true);
  await p.close();
});

test('a pool that is off boots every invocation and keeps nothing', async () => {
  const { p, factory } = pool({ enabled: false });
  const t = target('cold');
  for (let i = 0; i < 2; i++) {
    const lease = await p.acquire(t);
    await lease.loading;
    assert.equal(lease.startKind, 'cold');
    await p.release(lease, true);
  }
  assert.equal(factory.boots.length, 2);
  await p.close();
  assert.ok(factory.booted.every((i) => i.destroyed));
});

test('dropFunction removes the idle containers of a function and forgets its demand', async () => {
  const { p } = pool();
  const lease = await p.acquire(target('gone'));
  await lease.loading;
  await p.release(lease, true);
  await p.dropFunction('gone');
  assert.equal(p.slots().filter((x) => x.fn === 'gone@v1').length, 0);
  assert.equal(p.demandReport().functions['gone@v1'], undefined);
  await p.close();
});

test('illegal transitions are refused with a typed error naming from and to', () => {
  const slot = startingSlot('stem', 'nodejs20', 128);
  assert.throws(() => move(slot, 'busy'), (e: unknown) => e instanceof SlotStateError && e.from === 'starting' && e.to === 'busy' && /starting.*busy/.test(e.message));
  move(slot, 'idle');
  specialise(slot, 'f@v1');
  assert.throws(() => move(slot, 'idle'), (e: unknown) => e instanceof SlotStateError && e.from === 'specialising' && e.to === 'idle');
  assert.throws(() => specialise(slot, 'g@v1'), SlotStateError, 'a function container is never specialised again');
  move(slot, 'removing');
  for (const to of ['starting', 'idle', 'specialising', 'busy', 'removing'] as const) assert.throws(() => move(slot, to), SlotStateError);
});

const bridge = (egress?: string[]): NetworkSpec => ({ mode: 'bridge', ...(egress ? { egress } : {}) });

test('a deployed bridge function gets a bridge stem cell made ahead; its first invocation is specialised from it, egress set before the load', async () => {
  const { p, factory } = pool({ bridgeStems: true, minStems: 1 });
  const t = target('b', { network: bridge(['198.51.100.0/24:80']) });
  await p.reconcile();
  assert.equal(factory.boots.length, 0, 'no bridge stem cell while no bridge function exists');
  p.expect(t);
  await p.reconcile();
  assert.deepEqual(factory.owns, [{ network: { mode: 'bridge', egress: [] } }], 'one bridge stem, made with an empty allowlist');
  assert.equal(p.slots()[0]!.network, 'bridge');
  // A none function of the same shape never takes it.
  const none = await p.acquire(target('n'));
  assert.equal(none.startKind, 'cold');
  assert.equal(none.instance.network, undefined);
  const lease = await p.acquire(t);
  await lease.loading;
  assert.equal(lease.startKind, 'specialized');
  assert.deepEqual(lease.instance.network, t.network, "the function's allowlist replaced the stem's empty one");
  assert.equal(lease.instance.steps[0], 'network', 'before its limits and its load');
  assert.ok(lease.instance.steps.includes('load:b@v1'));
  await p.close();
});

test('a bridge function without bridge stem cells (no bridge network) boots its own, with its network; so does a cold start', async () => {
  const { p, factory } = pool({ bridgeStems: false, minStems: 1 });
  const t = target('b', { network: bridge() });
  p.expect(t);
  await p.reconcile();
  assert.equal(factory.boots.length, 0, 'no bridge stem without a bridge network');
  const lease = await p.acquire(t);
  assert.equal(lease.startKind, 'cold');
  assert.deepEqual(factory.owns.at(-1), { network: { mode: 'bridge' } });
  await p.close();
});

test('the bridge stem cells go once the last bridge function that wants them is deleted', async () => {
  const { p, factory } = pool({ bridgeStems: true, minStems: 1 });
  p.expect(target('b', { network: bridge() }));
  p.expect(target('c', { network: bridge() }));
  await p.reconcile();
  assert.equal(factory.boots.length, 1, 'one stem per shape, whatever the number of functions');
  await p.dropFunction('b');
  await p.reconcile();
  assert.equal(p.slots().filter((s) => s.network === 'bridge').length, 1, 'c still wants it');
  await p.dropFunction('c');
  await p.reconcile();
  assert.equal(factory.booted[0]!.destroyed, true, 'the bridge stem is destroyed (its lease and veth with it)');
  assert.equal(p.slots().filter((s) => s.network === 'bridge' && s.state !== 'removing').length, 0);
  await p.close();
});
