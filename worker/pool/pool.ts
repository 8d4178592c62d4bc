/**
 * The worker's pool of pre-created containers: stem cells (a runtime booted, no function)
 * per runtime shape, and function containers (specialised, warm). This class holds the
 * slots and acts; choices come from policy.ts, slot states from slot.ts, demand from
 * demand.ts, quiet moments from quiet.ts, the background pass from reconcile.ts.
 *
 * How many containers to keep is the scheduler's decision (common/policy/sizing.ts), read
 * through opts.targets; when none is fresh the pool makes it itself, with the same code:
 * its own demand reports folded by observe() and decide(). Either way the pool keeps the
 * safety: never reclaim below what is in flight, only after the scale-down delay, never
 * beyond the memory budget.
 */
import type { RuntimeInstance } from '../instance/instance.js';
import { stemLimits, type FunctionLimits } from '../instance/specconv.js';
import { loadFunction } from './specialise.js';
import { DEFAULT_SIZING, evict, select, type SizingConfig, type Slot, type StemShape } from './policy.js';
import { emptyHistory, type DemandReport } from '../../common/policy/sizing.js';
import { versionKeyPrefix } from '../../common/keys.js';
import { booted, move, specialise, startingSlot, used } from './slot.js';
import { Demand } from './demand.js';
import { QuietMoments } from './quiet.js';
import { TargetsSource } from './targets.js';
import { engineInstances, type InstanceFactory, type OwnBoot, type PooledInstance } from './instances.js';
import { DEFAULT_FREEZE_GRACE_MS, NoCapacityError, type EvictReason, type FunctionTarget, type Lease, type PoolOptions } from './types.js';
import { reconcile } from './reconcile.js';
import { CapacityWaiters } from './capacity.js';

export type { EvictReason, FunctionTarget, Lease, PoolEvent, PoolOptions } from './types.js';
export { DEFAULT_FREEZE_GRACE_MS, NoCapacityError } from './types.js';

interface Entry<I> {
  slot: Slot;
  instance?: I;
}

export class Pool<I extends PooledInstance = RuntimeInstance> {
  private readonly entries = new Map<string, Entry<I>>();
  readonly sizing: SizingConfig;
  readonly demand: Demand;
  /** This pool's own demand reports as the scheduler would remember them: for sizing without one. */
  readonly history = emptyHistory();
  readonly quiet: QuietMoments;
  readonly targets: TargetsSource;
  private readonly instances: InstanceFactory<I>;
  private timer: NodeJS.Timeout | undefined;
  private refilling = false;
  /** A background pass is asked for and not yet started. */
  private kicked = false;
  private closed = false;
  private readonly capacity = new CapacityWaiters();
  /** Boots in flight, which close() waits for. */
  readonly booting = new Set<Promise<unknown>>();
  readonly counters = { specializations: 0, evictions: 0, created: 0 };

  constructor(readonly opts: PoolOptions<I>) {
    this.sizing = { ...DEFAULT_SIZING, ...opts.sizing };
    this.quiet = new QuietMoments(() => this.demand.inflightTotal);
    this.demand = new Demand(this.sizing.windowMs, opts.stemShapes ?? [], () => this.quiet.wentQuiet());
    this.targets = new TargetsSource(opts.targets, opts.targetsMaxAgeMs ?? 5000, opts.log ?? ((line) => console.error(line)));
    if (opts.instances) this.instances = opts.instances;
    else if (opts.engine && opts.images) this.instances = engineInstances(opts.engine, opts.images) as unknown as InstanceFactory<I>;
    else throw new Error('a pool needs either instances or an engine and images');
  }

  /** Starts the background loop: refill stem cells, reclaim idle containers. */
  start(intervalMs = 250): void {
    if (!this.opts.enabled) return;
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.timer.unref();
    void this.reconcile();
  }

  slots(): Slot[] {
    return [...this.entries.values()].map((e) => e.slot);
  }

  instanceOf(id: string): I | undefined {
    return this.entries.get(id)?.instance;
  }

  usedMb(): number {
    return this.slots().filter((s) => s.state !== 'removing').reduce((n, s) => n + s.memoryMb, 0);
  }

  /**
   * A container for one invocation of target: warm, else a specialised stem cell, else
   * cold. When every container is busy and the budget is spent, waits (up to waitMs)
   * for one to be released instead of failing at once.
   */
  async acquire(target: FunctionTarget, waitMs = 10_000): Promise<Lease<I>> {
    this.demand.begin(target.key);
    const giveUp = Date.now() + waitMs;
    try {
      for (;;) {
        try {
          return await this.acquireInner(target);
        } catch (err) {
          if (!(err instanceof NoCapacityError) || Date.now() >= giveUp) throw err;
          await this.capacity.wait(giveUp);
        }
      }
    } catch (err) {
      this.demand.end(target.key);
      throw err;
    }
  }

  private async acquireInner(target: FunctionTarget): Promise<Lease<I>> {
    const t = performance.now();
    const ownBoot = this.ownBoot(target);
    const network = target.network ? 'bridge' : 'none';
    const choice = this.opts.enabled
      ? select(this.slots(), { fn: target.key, runtime: target.runtime, memoryMb: target.memoryMb, isolation: target.isolation, network })
      : ({ kind: 'cold' } as const);
    if (choice.kind === 'warm') {
      move(choice.slot, 'busy');
      const instance = this.entries.get(choice.slot.id)!.instance!;
      const initMs = performance.now() - t;
      const thawMs = instance.wake();
      return { instance, startKind: 'warm', initMs, ...(thawMs !== undefined ? { thawMs } : {}), slot: choice.slot, target };
    }
    if (!ownBoot) this.demand.wantedStem(stemShapeOf(target), target.key);
    if (choice.kind === 'specialized' && !ownBoot) {
      const slot = choice.slot;
      specialise(slot, target.key);
      const instance = this.entries.get(slot.id)!.instance!;
      const loading = this.specialize(slot, instance, target, true).then(() => {
        this.counters.specializations++;
        this.opts.onEvent?.({ type: 'specialized', runtime: target.runtime });
      });
      // A failed load is the invocation's to report; release() then removes the container.
      loading.catch(() => {});
      this.kick();
      return { instance, startKind: 'specialized', initMs: performance.now() - t, loading, slot, target };
    }
    // Cold: make room, boot, load. Concurrent cold starts boot in parallel.
    const victims = evict(this.slots(), target.memoryMb, this.opts.budgetMb);
    if (!victims) throw new NoCapacityError(target.memoryMb, this.opts.budgetMb);
    for (const v of victims) void this.remove(v.id, 'budget');
    const slot = startingSlot('function', target.runtime, target.memoryMb, target.key, target.network ? 'bridge' : undefined);
    this.entries.set(slot.id, { slot });
    let instance: I;
    try {
      instance = await this.boot(target.runtime, { ...target.limits, cpus: this.bootCpus(), cpuBurst: 0 }, false, {
        // Its own userns mode and network, made with it (a cold start has nothing ahead of it).
        ...(target.userns !== undefined ? { userns: target.userns } : {}),
        ...(target.network ? { network: target.network } : {}),
      });
    } catch (err) {
      this.entries.delete(slot.id);
      throw err;
    }
    this.entries.delete(slot.id);
    booted(slot, instance.id);
    this.entries.set(slot.id, { slot, instance });
    const loading = this.specialize(slot, instance, target);
    loading.catch(() => {});
    this.kick();
    return { instance, startKind: 'cold', initMs: performance.now() - t, loading, slot, target };
  }

  /** Gives a container back after an invocation. */
  async release(lease: Lease<I>, healthy: boolean): Promise<void> {
    this.demand.end(lease.target.key);
    const { slot } = lease;
    used(slot);
    if (!healthy || !lease.instance.alive || slot.state !== 'busy') return this.remove(slot.id, 'crashed');
    if (!this.opts.enabled || lease.target.isolation === 'fresh') {
      // Never handed to anyone else: claimed now, destroyed at the next quiet moment (off
      // this invocation's reply), and replaced by a refill in the background.
      this.retire(slot.id);
      this.kick();
      return;
    }
    move(slot, 'idle');
    // Only function containers get here. Stem cells are never frozen: only faasbox's
    // runtime runs in one, blocked on its request pipe (measured: 0 ms of CPU in 5 s for an
    // idle nodejs20 and python3 stem), so a freeze would save nothing and put a thaw on the
    // specialised start's path.
    const grace = this.opts.freezeGraceMs ?? DEFAULT_FREEZE_GRACE_MS;
    if (grace > 0) lease.instance.freezeAfter(grace, (err) => this.opts.log?.(`freezing idle container ${slot.id}: ${err.message}`));
    this.capacity.wakeOne();
  }

  /** Removes every container of a function (it was deleted or updated). */
  async dropFunction(name: string): Promise<void> {
    const prefix = versionKeyPrefix(name);
    // Forgotten first, synchronously: a replacing version's deploy (expect()) may land
    // while the removals below are awaited, and must not be forgotten with the old one.
    this.demand.forget(prefix);
    await Promise.all(
      this.slots()
        .filter((s) => s.kind === 'function' && s.fn?.startsWith(prefix) && s.state === 'idle')
        .map((s) => this.remove(s.id, 'deleted')),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    // Nothing waits for a quiet moment any more: retired containers go with all the others below.
    this.quiet.clear();
    // Boots in flight finish first: each then finds the pool closed and destroys its container.
    while (this.booting.size) await Promise.allSettled([...this.booting]);
    await Promise.all([...this.entries.keys()].map((id) => this.remove(id, 'deleted')));
  }

  bootCpus(): number {
    return this.opts.bootCpus ?? 1;
  }

  /**
   * Whether target's containers are booted for it rather than specialised from stem
   * cells: its userns mode differs from the stem cells' (the worker's default), or it is
   * a bridge function and this pool makes no bridge stem cells (the engine has no bridge
   * network: its boot then fails with the engine's NETWORK_UNAVAILABLE, which is the
   * invocation's answer).
   */
  private ownBoot(target: FunctionTarget): boolean {
    return (target.userns !== undefined && target.userns !== (this.opts.usernsByDefault ?? false)) || (target.network !== undefined && !this.opts.bridgeStems);
  }

  /**
   * A function now exists (deployed): a bridge function's shape is kept from now on, so
   * that its first invocation finds a bridge stem cell made ahead. A none function needs
   * nothing: its shape's stems are kept by the worker's configuration or by demand.
   */
  expect(target: FunctionTarget): void {
    if (!this.opts.enabled || !target.network || this.ownBoot(target)) return;
    this.demand.expect(stemShapeOf(target), target.key);
    this.kick();
  }

  /** The function's network (a stem cell's: its egress and limits), limits and load (specialise.ts); once loaded, the slot is busy with its invocation. */
  private specialize(slot: Slot, instance: I, target: FunctionTarget, fromStem = false): Promise<void> {
    return loadFunction(instance, target, fromStem).then(() => {
      if (slot.state === 'specialising') move(slot, 'busy');
    });
  }

  /** Boots a container; a stem cell's slot is made and tracked by reconcile.ts's refill. */
  /** `own`: a function's userns or network mode where it differs from the stem cells' (absent: the engine's default, mode none). */
  async boot(runtime: string, limits: FunctionLimits, warmUp = true, own: OwnBoot = {}): Promise<I> {
    const t = performance.now();
    try {
      const booting = this.instances.boot(runtime, limits, warmUp, own);
      this.booting.add(booting);
      const inst = await booting.finally(() => this.booting.delete(booting));
      this.counters.created++;
      this.opts.onEvent?.({ type: 'created', runtime, ms: performance.now() - t });
      // A runtime that dies while pooled is replaced: the entry goes, the refill makes another.
      void inst.exited.then(() => {
        const e = this.entries.get(inst.id);
        if (e && e.slot.state === 'idle') void this.remove(inst.id, 'crashed').then(() => this.kick());
      });
      return inst;
    } catch (err) {
      this.opts.onEvent?.({ type: 'boot-failed', runtime, error: (err as Error).message });
      throw err;
    }
  }

  /**
   * Boots a stem cell of a shape into a slot of its own (reconcile.ts's refill). A bridge
   * one gets its veth, address, route and DNS files now, and an empty allowlist: no set
   * element, so no egress at all until a function's is set at specialisation.
   */
  bootStem(shape: StemShape): Promise<void> {
    const { runtime, memoryMb } = shape;
    const slot = startingSlot('stem', runtime, memoryMb, undefined, shape.network);
    this.entries.set(slot.id, { slot });
    const own: OwnBoot = shape.network === 'bridge' ? { network: { mode: 'bridge', egress: [] } } : {};
    const done = this.boot(runtime, stemLimits(memoryMb, this.bootCpus()), true, own).then(
      (inst) => {
        this.entries.delete(slot.id);
        if (this.closed) return inst.destroy();
        booted(slot, inst.id);
        this.entries.set(slot.id, { slot, instance: inst });
      },
      () => {
        this.entries.delete(slot.id);
      },
    );
    // close() waits for the whole step, the destroy of a late boot included.
    this.booting.add(done);
    void done.finally(() => this.booting.delete(done));
    return done;
  }

  /**
   * Takes a used container out of service at once: it stays 'busy' (never selected, still
   * counted against the budget) and its processes are killed now, so nothing of the last
   * caller's code runs on; the teardown (unmounts, rmdirs) waits for a quiet moment.
   */
  private retire(id: string): void {
    this.entries.get(id)?.instance?.kill().catch(() => {});
    this.quiet.whenQuiet(() => {
      this.remove(id, 'fresh').catch((err: Error) => this.opts.log?.(`destroying container ${id}: ${err.message}`));
    });
  }

  /** Claims the slot synchronously (state 'removing'), then destroys its container. */
  async remove(id: string, reason: EvictReason): Promise<void> {
    const e = this.entries.get(id);
    if (!e || e.slot.state === 'removing') return;
    // Idle-driven removals must never take a container an invocation took meanwhile.
    if ((reason === 'idle' || reason === 'budget') && e.slot.state !== 'idle') return;
    move(e.slot, 'removing');
    this.counters.evictions++;
    this.opts.onEvent?.({ type: 'evicted', reason });
    try {
      await e.instance?.destroy();
    } finally {
      this.entries.delete(id);
      this.capacity.wakeOne();
    }
  }

  /** This pool's demand, for the scheduler to size it (common/policy/sizing.ts). */
  demandReport(now = Date.now()): DemandReport {
    return this.demand.report(now);
  }

  /** Asks for a background pass, run at the next quiet moment (see quiet.ts). */
  kick(): void {
    if (!this.opts.enabled || this.closed || this.kicked) return;
    this.kicked = true;
    this.quiet.whenQuiet(() => {
      this.kicked = false;
      if (!this.closed) void this.reconcile();
    });
  }

  /** One pass of the background loop (reconcile.ts). Never on the request path. */
  async reconcile(): Promise<void> {
    if (this.refilling || this.closed) return;
    this.refilling = true;
    try {
      await reconcile(this);
    } finally {
      this.refilling = false;
    }
  }
}

/** The stem cell shape a target takes: runtime, memory size, network mode. */
function stemShapeOf(target: FunctionTarget): StemShape {
  return { runtime: target.runtime, memoryMb: target.memoryMb, ...(target.network ? { network: 'bridge' as const } : {}) };
}
