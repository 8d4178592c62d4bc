/** Small statistics for side-by-side benchmarks: medians and percentiles of one run. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

export const median = (samples: number[]): number => percentile(samples, 50);

export const round = (n: number, digits = 2): number => Number(n.toFixed(digits));

/** Runs the contenders round-robin, so that a noisy moment hurts all of them alike. */
/** A contender may return an untimed step (cleanup) that runs after its clock stops. */
export type Contender = () => Promise<void | (() => Promise<void>)>;

export async function interleave(contenders: Record<string, Contender>, iterations: number, warmup = 3): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of Object.keys(contenders)) out[name] = [];
  for (let i = 0; i < warmup + iterations; i++) {
    for (const [name, fn] of Object.entries(contenders)) {
      const t = performance.now();
      const after = await fn();
      const dt = performance.now() - t;
      if (i >= warmup) out[name]!.push(dt);
      if (after) await after();
    }
  }
  return out;
}
