/**
 * Pool sizing, decided by the scheduler from what workers report (issue 4): per
 * function version, how many warm containers a worker keeps; per runtime shape, how many
 * stem cells. Pure, so it is unit-tested without Redis; scheduler/main.ts feeds it the
 * reports and writes the decisions, worker/pool/pool.ts acts on them. A worker with no
 * fresh decision (no scheduler running) folds its own reports through the same
 * observe() and decide(), so a lone worker still sizes its pools, by the same rules.
 *
 * The flow per worker:
 *
 *   worker ──DemandReport (every 200 ms, <prefix>:worker-demand)──▶ scheduler
 *   scheduler: observe() each tick turns reports into a history of samples,
 *              decide() turns the history into PoolTargets
 *   scheduler ──PoolTargets (<prefix>:pool-targets)──▶ worker's refill loop
 */

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

export class SizingConfigError extends Error {
  readonly code = 'INVALID_SIZING';
  constructor(message: string) {
    super(message);
    this.name = 'SizingConfigError';
  }
}

/** Throws when a floor exceeds its ceiling or a value is negative or not a number. */
export function validateSizing(cfg: SizingConfig): SizingConfig {
  for (const [k, v] of Object.entries(cfg)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new SizingConfigError(`pool sizing: ${k} must be a non-negative number, got ${String(v)}`);
  }
  if (cfg.minWarm > cfg.maxWarm) throw new SizingConfigError(`pool sizing: minWarm (${cfg.minWarm}) exceeds maxWarm (${cfg.maxWarm})`);
  if (cfg.minStems > cfg.maxStems) throw new SizingConfigError(`pool sizing: minStems (${cfg.minStems}) exceeds maxStems (${cfg.maxStems})`);
  return cfg;
}

/** One sample of demand: in-flight plus queued invocations at an instant (or averaged over a short interval). */
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
  let sum = 0;
  let max = 0;
  // One pass, no spread: Math.max(...samples) throws once the samples are more than a
  // call takes arguments (reproduced with 300k).
  for (const s of recent) {
    sum += s.concurrency;
    if (s.concurrency > max) max = s.concurrency;
  }
  const avg = sum / recent.length;
  // Samples averaged over an interval and queued shares can be fractional: the peak
  // caps the target at what was actually seen at once, rounded up.
  const peak = Math.ceil(max);
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

export function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}

// ---------------------------------------------------------------------------------------
// What a worker reports, what the scheduler remembers, what it decides.

/** Demand of one function version on one worker. */
export interface FunctionDemand {
  /** Invocations holding or waiting for a container of it right now. */
  inflight: number;
  lastInvokedAt: number;
  /**
   * The integral of in-flight over time (container-milliseconds) since the worker began
   * tracking the function; monotonic. Two reports give the exact time-weighted average
   * concurrency between them, however short the invocations (an instantaneous in-flight
   * read once a second would miss a burst of 50 ms calls entirely).
   */
  concurrencyMs: number;
}

export interface DemandReport {
  /** Epoch ms the report was made. */
  at: number;
  /** name@version -> demand. */
  functions: Record<string, FunctionDemand>;
  /**
   * "runtime/memoryMb" -> times an invocation wanted a stem cell of that shape, over
   * the last few seconds (the scheduler accumulates its own window). Every shape the
   * worker keeps is listed, with no times when there was no demand.
   */
  stems: Record<string, number[]>;
}

/** What a worker's pool should hold, as the scheduler decided it. */
export interface PoolTargets {
  /** Epoch ms of the decision; a worker ignores targets older than a few seconds. */
  at: number;
  /** name@version -> warm containers to keep. */
  functions: Record<string, number>;
  /** "runtime/memoryMb" -> stem cells to keep. */
  stems: Record<string, number>;
  /** The scheduler's scale-down delay and idle TTL; the worker applies them when it reclaims. */
  scaleDownDelayMs: number;
  idleTtlMs: number;
}

interface FunctionHistory {
  samples: DemandSample[];
  /** The last report seen: its time and integral, to difference the next one against. */
  seenAt: number;
  concurrencyMs: number;
  lastInvokedAt: number;
}

/** What the scheduler remembers of one worker between ticks. */
export interface WorkerHistory {
  functions: Map<string, FunctionHistory>;
  stems: Map<string, number[]>;
}

export function emptyHistory(): WorkerHistory {
  return { functions: new Map(), stems: new Map() };
}

/**
 * Folds one demand report into the worker's history (mutating it): one concurrency
 * sample per function, the time-weighted average in-flight since the previous report
 * plus the invocations queued for it (`queued`, name@version -> count, possibly
 * fractional: a share of the shared queue); new specialisation times per shape. A report
 * already seen adds nothing. Functions and shapes the worker no longer reports are
 * forgotten. Everything older than the window goes.
 */
export function observe(h: WorkerHistory, report: DemandReport, queued: Readonly<Record<string, number>>, cfg: SizingConfig): WorkerHistory {
  for (const key of [...h.functions.keys()]) if (!(key in report.functions)) h.functions.delete(key);
  for (const [key, d] of Object.entries(report.functions)) {
    const prev = h.functions.get(key);
    if (prev && report.at <= prev.seenAt) continue;
    // First sight, or the worker restarted (its integral went back): in-flight as it is now.
    const avg = prev && d.concurrencyMs >= prev.concurrencyMs ? (d.concurrencyMs - prev.concurrencyMs) / (report.at - prev.seenAt) : d.inflight;
    const samples = prev?.samples ?? [];
    samples.push({ at: report.at, concurrency: avg + (queued[key] ?? 0) });
    while (samples.length && report.at - samples[0]!.at > cfg.windowMs) samples.shift();
    h.functions.set(key, { samples, seenAt: report.at, concurrencyMs: d.concurrencyMs, lastInvokedAt: d.lastInvokedAt });
  }
  for (const key of [...h.stems.keys()]) if (!(key in report.stems)) h.stems.delete(key);
  for (const [key, times] of Object.entries(report.stems)) {
    const known = h.stems.get(key) ?? [];
    const newest = known.length ? known[known.length - 1]! : -Infinity;
    for (const t of [...times].sort((a, b) => a - b)) if (t > newest) known.push(t);
    while (known.length && report.at - known[0]! > cfg.windowMs) known.shift();
    h.stems.set(key, known);
  }
  return h;
}

/**
 * The decision for one worker from its history. `now` should be the time of the worker's
 * latest report: every time in the history is on the worker's clock, and so is the
 * decision's `at`, which the worker compares with its own clock to judge freshness; a
 * scheduler whose clock is off does not make targets look fresh or stale.
 */
export function decide(h: WorkerHistory, now: number, cfg: SizingConfig): PoolTargets {
  const functions: Record<string, number> = {};
  for (const [key, f] of h.functions) functions[key] = desiredWarm(f.samples, f.lastInvokedAt, now, cfg);
  const stems: Record<string, number> = {};
  for (const [key, times] of h.stems) stems[key] = desiredStems(times, now, cfg);
  return { at: now, functions, stems, scaleDownDelayMs: cfg.scaleDownDelayMs, idleTtlMs: cfg.idleTtlMs };
}

/** Targets as read back from Redis, or undefined when they are not what decide() writes. */
export function parseTargets(raw: string | null | undefined): PoolTargets | undefined {
  if (!raw) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const t = v as Partial<PoolTargets>;
  const counts = (o: unknown) => typeof o === 'object' && o !== null && Object.values(o).every((n) => typeof n === 'number' && n >= 0);
  if (typeof t !== 'object' || t === null || typeof t.at !== 'number' || !counts(t.functions) || !counts(t.stems)) return undefined;
  if (typeof t.scaleDownDelayMs !== 'number' || typeof t.idleTtlMs !== 'number') return undefined;
  return t as PoolTargets;
}

export { demandKey, poolTargetsKey } from '../keys.js';
