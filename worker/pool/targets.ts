/**
 * Which sizing the pool follows: the scheduler's latest targets while they are fresh,
 * else its own (the same code over its own reports). Logs only when the source changes.
 */
import type { PoolTargets } from '../../common/policy/sizing.js';

export class TargetsSource {
  private source: 'scheduler' | 'local' | undefined;

  constructor(
    private readonly read: (() => PoolTargets | undefined) | undefined,
    private readonly maxAgeMs: number,
    private readonly log: (line: string) => void,
  ) {}

  /** The scheduler's targets if fresh, else undefined. */
  current(now: number): PoolTargets | undefined {
    if (!this.read) return undefined;
    let t: PoolTargets | undefined;
    try {
      t = this.read();
    } catch {
      t = undefined;
    }
    const fresh = t && now - t.at <= this.maxAgeMs ? t : undefined;
    const source = fresh ? 'scheduler' : 'local';
    if (source !== this.source) {
      this.log(
        fresh ? "pool sizing: following the scheduler's targets" : `pool sizing: no scheduler targets fresher than ${this.maxAgeMs} ms; sizing locally until the scheduler's arrive`,
      );
      this.source = source;
    }
    return fresh;
  }
}
