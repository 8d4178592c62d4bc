/**
 * Pool policy as pure functions (OpenWhisk's ContainerPool habit): which container an
 * invocation takes, what to evict to make room, how many containers to keep warm.
 * The pool (pool.ts) holds the state and acts; everything it decides comes from here,
 * except how many containers to keep, which the scheduler decides (common/policy/sizing.ts).
 */

export type Isolation = 'reuse' | 'fresh';
export type StartKind = 'warm' | 'specialized' | 'cold';

/** A pool slot, read-only here: slot.ts changes it, through its guarded transitions. */
export interface Slot {
  readonly id: string;
  /** 'stem': a generic runtime, booted, waiting for a function; 'function': specialised. */
  readonly kind: 'stem' | 'function';
  readonly runtime: string;
  readonly memoryMb: number;
  /**
   * 'bridge': made with its eth0, address and DNS files (and no egress until a function's
   * is set at specialisation); absent: none, loopback only. Part of the stem cell's shape.
   */
  readonly network?: 'bridge';
  /** name@version of the function loaded into it (kind 'function'). */
  readonly fn?: string;
  /** See slot.ts for what each means and which may follow which. */
  readonly state: 'starting' | 'idle' | 'specialising' | 'busy' | 'removing';
  /** Invocations served so far. */
  readonly uses: number;
  readonly lastUsedAt: number;
}

export interface Want {
  fn: string;
  runtime: string;
  memoryMb: number;
  isolation: Isolation;
  /** Bridge mode: only a bridge stem cell will do (absent: none). */
  network?: 'none' | 'bridge';
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
    // A stem cell's network is made with it: a bridge function never gets a none one, nor the reverse.
    if ((s.network ?? 'none') !== (want.network ?? 'none')) continue;
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
 * stem cells of other shapes before function containers. Only slots `eligible` accepts
 * are considered. Empty when nothing needs to go; undefined when even evicting every
 * eligible idle slot would not make room.
 */
export function evict(slots: readonly Slot[], needMb: number, budgetMb: number, eligible: (s: Slot) => boolean = () => true): Slot[] | undefined {
  let used = slots.filter((s) => s.state !== 'removing').reduce((sum, s) => sum + s.memoryMb, 0);
  if (used + needMb <= budgetMb) return [];
  const idle = slots
    .filter((s) => s.state === 'idle' && eligible(s))
    .sort((a, b) => (a.kind === b.kind ? a.lastUsedAt - b.lastUsedAt : a.kind === 'stem' ? -1 : 1));
  const out: Slot[] = [];
  for (const s of idle) {
    out.push(s);
    used -= s.memoryMb;
    if (used + needMb <= budgetMb) return out;
  }
  return undefined;
}

/**
 * Function containers to remove so a stem cell of needMb fits, when the budget is full.
 * A stem serves whichever function comes next; a function container idle for minIdleMs
 * serves only a function that has gone quiet. Without this, a worker whose budget fills
 * with idle containers of many functions stops refilling stems, and every newly invoked
 * function until the idle TTL boots cold. Least recently used first; undefined when
 * not enough of them have sat idle that long.
 */
export function evictForStem(slots: readonly Slot[], needMb: number, budgetMb: number, now: number, minIdleMs: number): Slot[] | undefined {
  return evict(slots, needMb, budgetMb, (s) => s.kind === 'function' && now - s.lastUsedAt >= minIdleMs);
}

// Sizing is the scheduler's (common/policy/sizing.ts); a pool without fresh targets runs the
// same code over its own reports.
export { DEFAULT_SIZING, type SizingConfig } from '../../common/policy/sizing.js';

/**
 * Function slots to reclaim: idle ones beyond the desired count that have been idle
 * for at least minIdleMs, oldest use first.
 */
export function reclaim(slots: readonly Slot[], fn: string, desired: number, now = Date.now(), minIdleMs = 0): Slot[] {
  return idleBeyond(
    slots.filter((s) => s.kind === 'function' && s.fn === fn),
    desired,
    now,
    minIdleMs,
  );
}

/**
 * Stem cells of one shape to reclaim: idle ones beyond the desired count that have sat
 * unused for at least minIdleMs, oldest first. Starting ones count towards the desired
 * number but are never taken.
 */
export function reclaimStems(slots: readonly Slot[], shape: StemShape, desired: number, now = Date.now(), minIdleMs = 0): Slot[] {
  return idleBeyond(
    slots.filter((s) => s.kind === 'stem' && ofShape(s, shape)),
    desired,
    now,
    minIdleMs,
  );
}

/** A stem cell's shape: runtime, memory size, and network mode (absent: none). */
export interface StemShape {
  runtime: string;
  memoryMb: number;
  network?: 'bridge';
}

export const ofShape = (s: Slot, shape: StemShape): boolean => s.runtime === shape.runtime && s.memoryMb === shape.memoryMb && (s.network ?? 'none') === (shape.network ?? 'none');

/** Of a group of slots, the idle ones beyond `desired` (removing ones not counted) that sat unused for minIdleMs, oldest first. */
function idleBeyond(group: readonly Slot[], desired: number, now: number, minIdleMs: number): Slot[] {
  const live = group.filter((s) => s.state !== 'removing');
  const excess = live.length - desired;
  if (excess <= 0) return [];
  return live
    .filter((s) => s.state === 'idle' && now - s.lastUsedAt >= minIdleMs)
    .sort((a, b) => a.lastUsedAt - b.lastUsedAt)
    .slice(0, excess);
}
