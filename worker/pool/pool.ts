/**
 * The worker's pool of pre-created containers: stem cells (a runtime booted, no
 * function) per runtime shape, and function containers (specialised, warm). The
 * choices come from policy.ts; this class holds the state and does the work, keeping
 * creation off the request path (refills run in the background).
 *
 * How many containers to keep is the scheduler's decision (common/policy/sizing.ts), read
 * through opts.targets; when none is fresh the pool makes it itself, with the same code:
 * its own demand reports folded by observe() and decide(). Either way the pool keeps the
 * safety: never reclaim below what is in flight, only after the scale-down delay, never
 * beyond the memory budget.
 */
import type { Engine } from '../engine/engine.js';
import { RuntimeInstance, type RuntimeImage } from '../instance/instance.js';
import { limitsChange, stemLimits, type FunctionLimits } from '../instance/specconv.js';
import {
  DEFAULT_SIZING,
  evict,
  evictForStem,
  reclaim,
  reclaimStems,
  select,
  type Isolation,
  type SizingConfig,
  type Slot,
  type StartKind,
} from './policy.js';
import { decide, emptyHistory, observe, type DemandReport, type PoolTargets } from '../../common/policy/sizing.js';
import { shapeKey, versionKeyPrefix } from '../../common/keys.js';

/**
 * An idle function container is frozen this long after its invocation ends (OpenWhisk's
 * pauseGrace is 50 ms too): back-to-back invocations never pay a thaw, and a busy child
 * left behind gets at most this much CPU after the answer.
 */
export const DEFAULT_FREEZE_GRACE_MS = 50;

/** Background work waits until nothing has been in flight this long (see Pool.whenQuiet). */
const REFILL_QUIET_MS = 10;
/** ...but never longer than this once asked for. */
const REFILL_MAX_DEFER_MS = 250;

export interface PoolOptions {
  engine: Engine;
  images: Record<string, RuntimeImage>;
  /** Memory the pool may commit to containers (sum of their limits). */
  budgetMb: number;
  /** false: no stem cells, no reuse; every invocation boots a container (the cold floor). */
  enabled: boolean;
  sizing?: Partial<SizingConfig>;
  /** Shapes kept as stem cells from the start. */
  stemShapes?: { runtime: string; memoryMb: number }[];
  /** CPU (cores) given to a container while it boots as a stem cell, before it is specialised. */
  bootCpus?: number;
  onEvent?: (e: PoolEvent) => void;
  /**
   * The latest sizing decision the scheduler made for this pool (polled off the request
   * path, e.g. worker/report.ts's TargetsFeed). Unset: the pool always sizes itself.
   */
  targets?: () => PoolTargets | undefined;
  /** Targets older than this are ignored (the scheduler is gone) and the pool sizes itself. */
  targetsMaxAgeMs?: number;
  /** Where the pool says which sizing it follows (default: stderr). */
  log?: (line: string) => void;
  /** Idle function containers are frozen after this long (default DEFAULT_FREEZE_GRACE_MS); 0: never frozen. */
  freezeGraceMs?: number;
}

/** How far back a demand report lists specialisation times; the scheduler keeps its own window. */
const STEM_REPORT_HORIZON_MS = 10_000;
/** At most this many times per shape in a report: more in the horizon than any sane maxStems. */
const STEM_REPORT_MAX_TIMES = 256;

export type PoolEvent =
  | { type: 'created'; runtime: string; ms: number }
  | { type: 'specialized'; runtime: string }
  | { type: 'evicted'; reason: 'budget' | 'idle' | 'fresh' | 'crashed' | 'deleted' }
  | { type: 'boot-failed'; runtime: string; error: string };

export interface FunctionTarget {
  /** name@version */
  key: string;
  name: string;
  runtime: string;
  /** The shape's memory: limits.memoryMb. */
  memoryMb: number;
  limits: FunctionLimits;
  isolation: Isolation;
  codeDir: string;
  entry: string;
  handler: string;
  env: Record<string, string>;
  /** How long the function's module may take to load (its top level run) before the container is killed. */
  loadTimeoutMs: number;
}

export interface Lease {
  instance: RuntimeInstance;
  startKind: StartKind;
  /**
   * Time spent making the container ready for this invocation up to the load request
   * (boot, limits); the load itself is still in flight in `loading`.
   */
  initMs: number;
  /** Time spent thawing the container (a warm one frozen while idle); absent when there was no thaw. */
  thawMs?: number;
  /**
   * The function's load, for specialised and cold starts: sent, not awaited, so the
   * invocation's request follows it down the pipe without a round trip in between.
   * Hand it to RuntimeInstance.invoke as afterLoad.
   */
  loading?: Promise<void>;
  slot: Slot;
  target: FunctionTarget;
}

export class NoCapacityError extends Error {
  readonly code = 'NO_CAPACITY';
  constructor(needMb: number, budgetMb: number) {
    super(`no capacity: ${needMb} MB more would exceed the worker's memory budget of ${budgetMb} MB with every container busy`);
    this.name = 'NoCapacityError';
  }
}

interface Entry {
  slot: Slot;
  instance?: RuntimeInstance;
}

interface FnDemand {
  inflight: number;
  lastInvokedAt: number;
  /** Integral of inflight over time up to changedAt (see FunctionDemand.concurrencyMs). */
  concurrencyMs: number;
  changedAt: number;
  target: FunctionTarget;
}

let seq = 0;

export class Pool {
  private readonly entries = new Map<string, Entry>();
  private readonly sizing: SizingConfig;
  private readonly demand = new Map<string, FnDemand>();
  /** This pool's own demand reports as the scheduler would remember them: for sizing without one. */
  private readonly history = emptyHistory();
  /** Times at which an invocation wanted a stem cell of a shape (specialised or cold). */
  private readonly stemDemand = new Map<string, number[]>();
  private readonly shapes = new Map<string, { runtime: string; memoryMb: number }>();
  private timer: NodeJS.Timeout | undefined;
  private refilling = false;
  /** Invocations holding a lease right now, over all functions. */
  private inflightTotal = 0;
  /** Work waiting for a quiet moment (see whenQuiet()), and since when. */
  private quietWaiters: (() => void)[] = [];
  private quietWantedAt: number | undefined;
  private quietTimer: NodeJS.Timeout | undefined;
  /** A background pass is asked for and not yet started. */
  private kicked = false;
  private closed = false;
  /** Which sizing the last reconcile followed, to log only the changes. */
  private sizingSource: 'scheduler' | 'local' | undefined;
  readonly counters = { specializations: 0, evictions: 0, created: 0 };

  constructor(private readonly opts: PoolOptions) {
    this.sizing = { ...DEFAULT_SIZING, ...opts.sizing };
    for (const s of opts.stemShapes ?? []) this.shapes.set(shapeKey(s.runtime, s.memoryMb), s);
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

  usedMb(): number {
    return this.slots().filter((s) => s.state !== 'removing').reduce((n, s) => n + s.memoryMb, 0);
  }

  /**
   * A container for one invocation of target: warm, else a specialised stem cell, else
   * cold. When every container is busy and the budget is spent, waits (up to waitMs)
   * for one to be released instead of failing at once.
   */
  async acquire(target: FunctionTarget, waitMs = 10_000): Promise<Lease> {
    const d = this.demandFor(target);
    this.changeInflight(d, +1);
    d.lastInvokedAt = Date.now();
    const giveUp = Date.now() + waitMs;
    try {
      for (;;) {
        try {
          return await this.acquireInner(target);
        } catch (err) {
          if (!(err instanceof NoCapacityError) || Date.now() >= giveUp) throw err;
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, Math.max(1, giveUp - Date.now()));
            this.released.push(() => {
              clearTimeout(t);
              resolve();
            });
          });
        }
      }
    } catch (err) {
      this.changeInflight(d, -1);
      throw err;
    }
  }

  /** Callers waiting for capacity; woken one at a time as containers are released or removed. */
  private released: (() => void)[] = [];

  private wakeOne(): void {
    this.released.shift()?.();
  }

  private async acquireInner(target: FunctionTarget): Promise<Lease> {
    const t = performance.now();
    const choice = this.opts.enabled
      ? select(this.slots(), { fn: target.key, runtime: target.runtime, memoryMb: target.memoryMb, isolation: target.isolation })
      : ({ kind: 'cold' } as const);
    if (choice.kind === 'warm') {
      choice.slot.state = 'busy';
      const entry = this.entries.get(choice.slot.id)!;
      const initMs = performance.now() - t;
      const thawMs = entry.instance!.wake();
      return { instance: entry.instance!, startKind: 'warm', initMs, ...(thawMs !== undefined ? { thawMs } : {}), slot: choice.slot, target };
    }
    this.noteStemDemand(target);
    if (choice.kind === 'specialized') {
      const slot = choice.slot;
      slot.state = 'busy';
      slot.kind = 'function';
      slot.fn = target.key;
      const entry = this.entries.get(slot.id)!;
      const loading = this.specialize(entry.instance!, target).then(() => {
        this.counters.specializations++;
        this.opts.onEvent?.({ type: 'specialized', runtime: target.runtime });
      });
      // A failed load is the invocation's to report; release() then removes the container.
      loading.catch(() => {});
      this.kick();
      return { instance: entry.instance!, startKind: 'specialized', initMs: performance.now() - t, loading, slot, target };
    }
    // Cold: make room, boot, load. Concurrent cold starts boot in parallel.
    const victims = evict(this.slots(), target.memoryMb, this.opts.budgetMb);
    if (!victims) throw new NoCapacityError(target.memoryMb, this.opts.budgetMb);
    for (const v of victims) void this.remove(v.id, 'budget');
    const slot: Slot = { id: `pending-${++seq}`, kind: 'function', runtime: target.runtime, memoryMb: target.memoryMb, fn: target.key, state: 'busy', uses: 0, lastUsedAt: Date.now() };
    this.entries.set(slot.id, { slot });
    let instance: RuntimeInstance;
    try {
      instance = await this.boot(target.runtime, { ...target.limits, cpus: this.bootCpus(), cpuBurst: 0 }, { warmUp: false });
    } catch (err) {
      this.entries.delete(slot.id);
      throw err;
    }
    this.entries.delete(slot.id);
    slot.id = instance.id;
    this.entries.set(slot.id, { slot, instance });
    const loading = this.specialize(instance, target);
    loading.catch(() => {});
    this.kick();
    return { instance, startKind: 'cold', initMs: performance.now() - t, loading, slot, target };
  }

  /** Gives a container back after an invocation. */
  async release(lease: Lease, healthy: boolean): Promise<void> {
    const d = this.demand.get(lease.target.key);
    if (d) this.changeInflight(d, -1);
    const { slot } = lease;
    slot.uses++;
    slot.lastUsedAt = Date.now();
    if (!healthy || !lease.instance.alive) return this.remove(slot.id, 'crashed');
    if (!this.opts.enabled || lease.target.isolation === 'fresh') {
      // Never handed to anyone else: claimed now, destroyed at the next quiet moment (off
      // this invocation's reply), and replaced by a refill in the background.
      this.retire(slot.id);
      this.kick();
      return;
    }
    slot.state = 'idle';
    // Only function containers get here. Stem cells are never frozen: only faasbox's
    // runtime runs in one, blocked on its request pipe (measured: 0 ms of CPU in 5 s for an
    // idle nodejs20 and python3 stem), so a freeze would save nothing and put a thaw on the
    // specialised start's path.
    const grace = this.opts.freezeGraceMs ?? DEFAULT_FREEZE_GRACE_MS;
    if (grace > 0) lease.instance.freezeAfter(grace, (err) => this.opts.log?.(`freezing idle container ${slot.id}: ${err.message}`));
    this.wakeOne();
  }

  /** Removes every container of a function (it was deleted or updated). */
  async dropFunction(name: string): Promise<void> {
    const prefix = versionKeyPrefix(name);
    await Promise.all(
      this.slots()
        .filter((s) => s.kind === 'function' && s.fn?.startsWith(prefix) && s.state === 'idle')
        .map((s) => this.remove(s.id, 'deleted')),
    );
    for (const key of [...this.demand.keys()]) if (key.startsWith(prefix)) this.demand.delete(key);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    clearTimeout(this.quietTimer);
    // Nothing waits for a quiet moment any more: retired containers go with all the others below.
    this.quietWaiters = [];
    // Boots in flight finish first: each then finds the pool closed and destroys its container.
    while (this.booting.size) await Promise.allSettled([...this.booting]);
    await Promise.all([...this.entries.keys()].map((id) => this.remove(id, 'deleted')));
  }

  private readonly booting = new Set<Promise<unknown>>();

  private bootCpus(): number {
    return this.opts.bootCpus ?? 1;
  }

  /** Sets the function's limits and sends its load; the promise settles when it has loaded. */
  private specialize(instance: RuntimeInstance, target: FunctionTarget): Promise<void> {
    const change = limitsChange(instance.limits, target.limits);
    const load = () => instance.beginLoad(target.key, target.codeDir, { entry: target.entry, handler: target.handler, env: target.env }, target.loadTimeoutMs);
    if (change.before) {
      // Memory, pids and disk are the function's before any of its code runs.
      instance.setLimits({ ...change.before, ...change.cpu }, target.limits);
      return load();
    }
    if (!change.cpu) return load();
    // Only the CPU quota changes (containers are pooled by memory size), and it is written
    // while the load request is on its way (0.2 ms off the path). The function's code
    // cannot get more than its burst allows anyway: a quota written mid-period starts with
    // a full slice, a full core for the quota's length.
    const loading = load();
    try {
      instance.setLimits(change.cpu, target.limits);
    } catch (err) {
      loading.catch(() => {});
      return instance.kill().then(() => Promise.reject(err));
    }
    return loading;
  }

  private async boot(runtime: string, limits: FunctionLimits, { warmUp = true } = {}): Promise<RuntimeInstance> {
    const image = this.opts.images[runtime];
    if (!image) throw new Error(`no image for runtime ${runtime}`);
    const t = performance.now();
    try {
      const booting = RuntimeInstance.boot(this.opts.engine, { image, limits, warmUp });
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
   * Takes a used container out of service at once: it stays 'busy' (never selected, still
   * counted against the budget) and its processes are killed now, so nothing of the last
   * caller's code runs on; the teardown (unmounts, rmdirs) waits for a quiet moment.
   */
  private retire(id: string): void {
    this.entries.get(id)?.instance?.kill().catch(() => {});
    this.whenQuiet(() => {
      this.remove(id, 'fresh').catch((err: Error) => this.opts.log?.(`destroying container ${id}: ${err.message}`));
    });
  }

  /** Claims the slot synchronously (state 'removing'), then destroys its container. */
  private async remove(id: string, reason: Extract<PoolEvent, { type: 'evicted' }>['reason']): Promise<void> {
    const e = this.entries.get(id);
    if (!e || e.slot.state === 'removing') return;
    // Idle-driven removals must never take a container an invocation took meanwhile.
    if ((reason === 'idle' || reason === 'budget') && e.slot.state !== 'idle') return;
    e.slot.state = 'removing';
    this.counters.evictions++;
    this.opts.onEvent?.({ type: 'evicted', reason });
    try {
      await e.instance?.destroy();
    } finally {
      this.entries.delete(id);
      this.wakeOne();
    }
  }

  private demandFor(target: FunctionTarget): FnDemand {
    let d = this.demand.get(target.key);
    if (!d) {
      d = { inflight: 0, lastInvokedAt: Date.now(), concurrencyMs: 0, changedAt: Date.now(), target };
      this.demand.set(target.key, d);
    }
    d.target = target;
    return d;
  }

  private changeInflight(d: FnDemand, by: number): void {
    const now = Date.now();
    d.concurrencyMs += d.inflight * (now - d.changedAt);
    d.changedAt = now;
    d.inflight += by;
    this.inflightTotal += by;
    // The pool went quiet: work that waited for this may go now.
    if (this.inflightTotal === 0 && this.quietWaiters.length) {
      clearTimeout(this.quietTimer);
      this.quietTimer = undefined;
      this.scheduleQuiet();
    }
  }

  /** This pool's demand, for the scheduler to size it (common/policy/sizing.ts). */
  demandReport(now = Date.now()): DemandReport {
    const functions: DemandReport['functions'] = {};
    for (const [key, d] of this.demand) {
      functions[key] = { inflight: d.inflight, lastInvokedAt: d.lastInvokedAt, concurrencyMs: d.concurrencyMs + d.inflight * (now - d.changedAt) };
    }
    const stems: DemandReport['stems'] = {};
    for (const key of this.shapes.keys()) {
      stems[key] = (this.stemDemand.get(key) ?? []).filter((t) => now - t <= STEM_REPORT_HORIZON_MS).slice(-STEM_REPORT_MAX_TIMES);
    }
    return { at: now, functions, stems };
  }

  /** The scheduler's targets if fresh, else undefined; logs when the source changes. */
  private currentTargets(now: number): PoolTargets | undefined {
    if (!this.opts.targets) return undefined;
    let t: PoolTargets | undefined;
    try {
      t = this.opts.targets();
    } catch {
      t = undefined;
    }
    const maxAge = this.opts.targetsMaxAgeMs ?? 5000;
    const fresh = t && now - t.at <= maxAge ? t : undefined;
    const source = fresh ? 'scheduler' : 'local';
    if (source !== this.sizingSource) {
      const log = this.opts.log ?? ((line: string) => console.error(line));
      log(
        fresh
          ? 'pool sizing: following the scheduler\'s targets'
          : `pool sizing: no scheduler targets fresher than ${maxAge} ms; sizing locally until the scheduler's arrive`,
      );
      this.sizingSource = source;
    }
    return fresh;
  }

  private noteStemDemand(target: FunctionTarget): void {
    const key = shapeKey(target.runtime, target.memoryMb);
    this.shapes.set(key, { runtime: target.runtime, memoryMb: target.memoryMb });
    const times = this.stemDemand.get(key) ?? [];
    times.push(Date.now());
    while (times.length && Date.now() - times[0]! > this.sizing.windowMs) times.shift();
    this.stemDemand.set(key, times);
  }

  /** Asks for a background pass, run at the next quiet moment (see whenQuiet()). */
  private kick(): void {
    if (!this.opts.enabled || this.closed || this.kicked) return;
    this.kicked = true;
    this.whenQuiet(() => {
      this.kicked = false;
      if (!this.closed) void this.reconcile();
    });
  }

  /**
   * Runs work at a quiet moment. Creating a container does milliseconds of synchronous
   * work on this thread (mkdirs, mounts, cgroup writes), destroying one as much again,
   * and booting a runtime takes a core for tens of ms: started next to a running
   * invocation, that lands on the invocation's path after all (measured in
   * bench/coldstart: a completion event waited up to 17 ms behind a stem cell's boot).
   * So it waits until nothing has been in flight for REFILL_QUIET_MS, and under steady
   * load runs after REFILL_MAX_DEFER_MS anyway, so pools still refill during long bursts.
   */
  private whenQuiet(run: () => void): void {
    this.quietWaiters.push(run);
    this.quietWantedAt ??= Date.now();
    this.scheduleQuiet();
  }

  private scheduleQuiet(): void {
    if (this.quietWantedAt === undefined || this.quietTimer) return;
    const waited = Date.now() - this.quietWantedAt;
    const delay = this.inflightTotal === 0 ? REFILL_QUIET_MS : Math.max(0, REFILL_MAX_DEFER_MS - waited);
    this.quietTimer = setTimeout(() => {
      this.quietTimer = undefined;
      if (this.quietWantedAt === undefined) return;
      if (this.inflightTotal > 0 && Date.now() - this.quietWantedAt < REFILL_MAX_DEFER_MS) return this.scheduleQuiet();
      this.quietWantedAt = undefined;
      for (const run of this.quietWaiters.splice(0)) run();
    }, delay);
  }

  /** One pass of the background loop. Never on the request path. */
  async reconcile(): Promise<void> {
    if (this.refilling || this.closed) return;
    this.refilling = true;
    try {
      const now = Date.now();
      const targets = this.currentTargets(now);
      // Folded on every pass, not only without targets, so that the pool's own sizing
      // has its window of history ready the moment the scheduler's targets go stale.
      const own = decide(observe(this.history, this.demandReport(now), {}, this.sizing), now, this.sizing);
      // Off the request path (0.02 ms per frozen container), so that the next invocation does
      // not find one dead (see thawIfKilled).
      for (const e of this.entries.values()) if (e.slot.state === 'idle') e.instance?.thawIfKilled();
      const idleTtlMs = targets?.idleTtlMs ?? this.sizing.idleTtlMs;
      const scaleDownDelayMs = targets?.scaleDownDelayMs ?? this.sizing.scaleDownDelayMs;
      // Reclaim idle function containers beyond what demand justifies (scale to zero after the TTL).
      for (const [key, d] of [...this.demand]) {
        // A function the scheduler has not seen yet (invoked since its last tick) is sized locally.
        const want = targets?.functions[key] ?? own.functions[key] ?? 0;
        const expired = now - d.lastInvokedAt >= idleTtlMs;
        // After the idle TTL everything above the target goes at once (scale to zero);
        // before it, only containers that sat idle for the scale-down delay.
        const idleFor = expired ? 0 : scaleDownDelayMs;
        // remove() claims each victim synchronously, before any await lets an invocation take it.
        await Promise.all(reclaim(this.slots(), key, Math.max(want, d.inflight), now, idleFor).map((s) => this.remove(s.id, 'idle')));
        // A function long idle with nothing left of it is forgotten, so reports stay small.
        if (expired && d.inflight === 0 && !this.slots().some((s) => s.fn === key)) this.demand.delete(key);
      }
      // Refill stem cells shape by shape, several at once so a burst is replaced quickly.
      const boots: Promise<unknown>[] = [];
      for (const [key, shape] of this.shapes) {
        const want = targets?.stems[key] ?? own.stems[key] ?? this.sizing.minStems;
        // Stems beyond the target (a burst has passed) go once they sat unused for the scale-down delay.
        for (const s of reclaimStems(this.slots(), shape.runtime, shape.memoryMb, want, now, scaleDownDelayMs)) void this.remove(s.id, 'idle');
        const have = this.slots().filter((s) => s.kind === 'stem' && s.runtime === shape.runtime && s.memoryMb === shape.memoryMb && s.state !== 'removing').length;
        for (let i = have; i < want; i++) {
          const victims = evictForStem(this.slots(), shape.memoryMb, this.opts.budgetMb, now, scaleDownDelayMs);
          if (!victims) break;
          for (const v of victims) void this.remove(v.id, 'budget');
          const slot: Slot = { id: `pending-${++seq}`, kind: 'stem', runtime: shape.runtime, memoryMb: shape.memoryMb, state: 'starting', uses: 0, lastUsedAt: now };
          this.entries.set(slot.id, { slot });
          const booted = this.boot(shape.runtime, stemLimits(shape.memoryMb, this.bootCpus())).then(
              (inst) => {
                this.entries.delete(slot.id);
                if (this.closed) return inst.destroy();
                slot.id = inst.id;
                slot.state = 'idle';
                this.entries.set(slot.id, { slot, instance: inst });
              },
              () => this.entries.delete(slot.id),
            );
          // close() waits for the whole step, the destroy of a late boot included.
          this.booting.add(booted);
          void booted.finally(() => this.booting.delete(booted));
          boots.push(booted);
          if (boots.length >= 4) break;
        }
      }
      await Promise.all(boots);
      if (boots.length) this.kick();
    } finally {
      this.refilling = false;
    }
  }
}
