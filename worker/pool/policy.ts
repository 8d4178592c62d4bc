/**
 * Pool policy as pure functions (OpenWhisk's ContainerPool habit): which container an
 * invocation takes, what to evict to make room, how many containers to keep warm.
 * The pool (pool.ts) holds the state and acts; everything it decides comes from here.
 */

export type Isolation = 'reuse' | 'fresh';
export type StartKind = 'warm' | 'specialized' | 'cold';

export interface Slot {
  id: string;
  /** 'stem': a generic runtime, booted, waiting for a function; 'function': specialised. */
  kind: 'stem' | 'function';
  runtime: string;
  memoryMb: number;
  /** name@version of the function loaded into it (kind 'function'). */
  fn?: string;
  state: 'starting' | 'idle' | 'busy' | 'removing';
  /** Invocations served so far. */
  uses: number;
  lastUsedAt: number;
}

export interface Want {
  fn: string;
  runtime: string;
  memoryMb: number;
  isolation: Isolation;
}

export type Choice = { kind: 'warm'; slot: Slot } | { kind: 'specialized'; slot: Slot } | { kind: 'cold' };

/**
 * Preference: an idle container of that very function version; then an idle stem cell
 * of the runtime and size; only then a container made from nothing. Under 'fresh'
 * isolation a container that has served anybody is never handed out again.
 */
export function select(slots: readonly Slot[], want: Want): Choice {
  let warm: Slot | undefined;
  let stem: Slot | undefined;
  for (const s of slots) {
    if (s.state !== 'idle' || s.runtime !== want.runtime || s.memoryMb !== want.memoryMb) continue;
    if (s.kind === 'function' && s.fn === want.fn && (want.isolation === 'reuse' || s.uses === 0)) {
      // Most recently used first: keeps the hottest container hot, lets others age out.
      if (!warm || s.lastUsedAt > warm.lastUsedAt) warm = s;
    } else if (s.kind === 'stem' && !stem) {
      stem = s;
    }
  }
  if (warm) return { kind: 'warm', slot: warm };
  if (stem) return { kind: 'specialized', slot: stem };
  return { kind: 'cold' };
}

/**
 * Idle slots to remove so that needMb more fits in budgetMb, least recently used first,
 * stem cells of other shapes before function containers. Empty when nothing needs to
 * go; undefined when even evicting every idle slot would not make room.
 */
export function evict(slots: readonly Slot[], needMb: number, budgetMb: number): Slot[] | undefined {
  let used = slots.filter((s) => s.state !== 'removing').reduce((sum, s) => sum + s.memoryMb, 0);
  if (used + needMb <= budgetMb) return [];
  const idle = slots
    .filter((s) => s.state === 'idle')
    .sort((a, b) => (a.kind === b.kind ? a.lastUsedAt - b.lastUsedAt : a.kind === 'stem' ? -1 : 1));
  const out: Slot[] = [];
  for (const s of idle) {
    out.push(s);
    used -= s.memoryMb;
    if (used + needMb <= budgetMb) return out;
  }
  return undefined;
}

export interface SizingConfig {
  /** Warm containers kept per function even when idle (scale to zero when 0). */
  minWarm: number;
  maxWarm: number;
  /** Idle time after which a function's warm containers are reclaimed down to minWarm. */
  idleTtlMs: number;
  /**
   * A container above the desired count is reclaimed only after sitting idle this long
   * (Knative's scale-down delay): bursts come back, and rebooting costs far more than
   * keeping a container a little longer.
   */
  scaleDownDelayMs: number;
  /** Window over which concurrency is averaged (Knative's stable window). */
  windowMs: number;
  /** Stem cells per runtime shape: floor, ceiling. */
  minStems: number;
  maxStems: number;
}

export const DEFAULT_SIZING: SizingConfig = {
  minWarm: 0,
  maxWarm: 32,
  idleTtlMs: 10 * 60_000,
  scaleDownDelayMs: 30_000,
  windowMs: 60_000,
  minStems: 1,
  maxStems: 16,
};

/** One sample of demand: in-flight plus queued invocations at an instant. */
export interface DemandSample {
  at: number;
  concurrency: number;
}

/**
 * Desired warm containers for one function: the average concurrency over the window,
 * rounded up (Knative's concurrency-based target), never above the peak observed,
 * within [minWarm, maxWarm]; minWarm once the function has been idle for idleTtlMs.
 */
export function desiredWarm(samples: readonly DemandSample[], lastInvokedAt: number, now: number, cfg: SizingConfig): number {
  if (now - lastInvokedAt >= cfg.idleTtlMs) return cfg.minWarm;
  const recent = samples.filter((s) => now - s.at <= cfg.windowMs);
  if (recent.length === 0) return Math.max(cfg.minWarm, Math.min(1, cfg.maxWarm));
  const avg = recent.reduce((sum, s) => sum + s.concurrency, 0) / recent.length;
  const peak = Math.max(...recent.map((s) => s.concurrency));
  const target = Math.min(Math.ceil(avg), peak);
  return clamp(Math.max(target, 1), cfg.minWarm, cfg.maxWarm);
}

/**
 * Desired stem cells for one runtime shape: as many as the largest burst of
 * specialisations seen in the window (so the next burst of that size fans out over
 * ready stems instead of queueing behind one; fission#2452), within [minStems,
 * maxStems]. Reactive, as OpenWhisk's prewarm count after PR #4871.
 */
export function desiredStems(specializationTimes: readonly number[], now: number, cfg: SizingConfig, burstMs = 1000): number {
  const recent = specializationTimes.filter((t) => now - t <= cfg.windowMs).sort((a, b) => a - b);
  let burst = 0;
  for (let i = 0, j = 0; j < recent.length; j++) {
    while (recent[j]! - recent[i]! > burstMs) i++;
    burst = Math.max(burst, j - i + 1);
  }
  return clamp(burst, cfg.minStems, cfg.maxStems);
}

/**
 * Function slots to reclaim: idle ones beyond the desired count that have been idle
 * for at least minIdleMs, oldest use first.
 */
export function reclaim(slots: readonly Slot[], fn: string, desired: number, now = Date.now(), minIdleMs = 0): Slot[] {
  const mine = slots.filter((s) => s.kind === 'function' && s.fn === fn && s.state !== 'removing');
  const excess = mine.length - desired;
  if (excess <= 0) return [];
  return mine
    .filter((s) => s.state === 'idle' && now - s.lastUsedAt >= minIdleMs)
    .sort((a, b) => a.lastUsedAt - b.lastUsedAt)
    .slice(0, excess);
}

export function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}
