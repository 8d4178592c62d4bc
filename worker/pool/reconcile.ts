/**
 * The pool's background pass, never on the request path: reclaim idle function
 * containers beyond what demand justifies, and refill stem cells shape by shape. How many
 * of each comes from the scheduler's fresh targets, else from the pool's own sizing over
 * its own reports; which ones go comes from policy.ts.
 */
import { decide, observe } from '../../common/policy/sizing.js';
import { evictForStem, ofShape, reclaim, reclaimStems } from './policy.js';
import type { PooledInstance } from './instances.js';
import type { Pool } from './pool.js';

/** A shape's refill stops after this many boots in the pass (every later shape still gets one), so a burst is replaced quickly without a stampede. */
const MAX_BOOTS_PER_PASS = 4;

export async function reconcile<I extends PooledInstance>(pool: Pool<I>): Promise<void> {
  const now = Date.now();
  const targets = pool.targets.current(now);
  // Folded on every pass, not only without targets, so that the pool's own sizing
  // has its window of history ready the moment the scheduler's targets go stale.
  const own = decide(observe(pool.history, pool.demand.report(now), {}, pool.sizing), now, pool.sizing);
  // Off the request path (0.02 ms per frozen container), so that the next invocation does
  // not find one dead (see thawIfKilled).
  for (const s of pool.slots()) if (s.state === 'idle') pool.instanceOf(s.id)?.thawIfKilled();
  const idleTtlMs = targets?.idleTtlMs ?? pool.sizing.idleTtlMs;
  const scaleDownDelayMs = targets?.scaleDownDelayMs ?? pool.sizing.scaleDownDelayMs;
  // Reclaim idle function containers beyond what demand justifies (scale to zero after the TTL).
  for (const [key, d] of [...pool.demand.functions]) {
    // A function the scheduler has not seen yet (invoked since its last tick) is sized locally.
    const want = targets?.functions[key] ?? own.functions[key] ?? 0;
    const expired = now - d.lastInvokedAt >= idleTtlMs;
    // After the idle TTL everything above the target goes at once (scale to zero);
    // before it, only containers that sat idle for the scale-down delay.
    const idleFor = expired ? 0 : scaleDownDelayMs;
    // remove() claims each victim synchronously, before any await lets an invocation take it.
    await Promise.all(reclaim(pool.slots(), key, Math.max(want, d.inflight), now, idleFor).map((s) => pool.remove(s.id, 'idle')));
    // A function long idle with nothing left of it is forgotten, so reports stay small.
    if (expired && d.inflight === 0 && !pool.slots().some((s) => s.fn === key)) pool.demand.functions.delete(key);
  }
  // Stem cells of a shape no longer kept (the last bridge function deleted) go at once.
  for (const s of pool.slots()) {
    if (s.kind === 'stem' && s.state === 'idle' && !pool.demand.keeps({ runtime: s.runtime, memoryMb: s.memoryMb, ...(s.network ? { network: s.network } : {}) })) void pool.remove(s.id, 'idle');
  }
  const boots: Promise<unknown>[] = [];
  for (const [key, shape] of pool.demand.shapes) {
    const want = targets?.stems[key] ?? own.stems[key] ?? pool.sizing.minStems;
    // Stems beyond the target (a burst has passed) go once they sat unused for the scale-down delay.
    for (const s of reclaimStems(pool.slots(), shape, want, now, scaleDownDelayMs)) void pool.remove(s.id, 'idle');
    const have = pool.slots().filter((s) => s.kind === 'stem' && ofShape(s, shape) && s.state !== 'removing').length;
    for (let i = have; i < want; i++) {
      const victims = evictForStem(pool.slots(), shape.memoryMb, pool.opts.budgetMb, now, scaleDownDelayMs);
      if (!victims) break;
      for (const v of victims) void pool.remove(v.id, 'budget');
      boots.push(pool.bootStem(shape));
      if (boots.length >= MAX_BOOTS_PER_PASS) break;
    }
  }
  await Promise.all(boots);
  if (boots.length) pool.kick();
}
