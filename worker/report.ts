/**
 * The worker's link to the rest of the system. Several times a second it tells: its idle
 * warm containers per function version, idle stem cells per shape, free memory budget
 * and load (placement: the gateway routes invocations from these, common/policy/placement.ts),
 * and its demand (sizing: the scheduler decides pool sizes from it,
 * common/policy/sizing.ts). It hears back the scheduler's pool targets for this worker.
 */
import type { Redis } from 'ioredis';
import type { Pool } from './pool/pool.js';
import { shapeKey } from '../common/keys.js';
import { workersKey, type WorkerReport } from '../common/policy/placement.js';
import { demandKey, parseTargets, poolTargetsKey, type DemandReport, type PoolTargets } from '../common/policy/sizing.js';

export function reportOf(id: string, queue: string, pool: Pool, budgetMb: number, inflight: number): WorkerReport {
  const warm: Record<string, number> = {};
  const stems: Record<string, number> = {};
  for (const s of pool.slots()) {
    // A busy function container counts as warm: the gateway places from a report up to
    // ~400 ms old, and a container busy when it was taken is usually idle again when the
    // next call lands (release precedes the reply). Counting idle ones only, a caller's
    // next call bounced to another worker's stem cell whenever the report caught its
    // previous call running: 1 call in 10 in a TCG VM, where calls are slower.
    if (s.kind === 'function' && s.fn && s.state !== 'starting' && s.state !== 'removing') warm[s.fn] = (warm[s.fn] ?? 0) + 1;
    else if (s.kind === 'stem' && s.state === 'idle') {
      const key = shapeKey(s.runtime, s.memoryMb, s.network);
      stems[key] = (stems[key] ?? 0) + 1;
    }
  }
  return { id, queue, at: Date.now(), freeMb: budgetMb - pool.usedMb(), warm, stems, inflight };
}

/**
 * The scheduler's latest targets for one worker, polled from Redis off the request path.
 * Created before the Redis connection exists (the pool reads it from its first refill),
 * started by the Reporter.
 */
export class TargetsFeed {
  private latest: PoolTargets | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly prefix: string,
    private readonly workerId: string,
  ) {}

  /** The last targets read, however old: the pool judges their freshness. */
  current(): PoolTargets | undefined {
    return this.latest;
  }

  start(redis: Redis, intervalMs = 250): void {
    const read = () => {
      redis
        .hget(poolTargetsKey(this.prefix), this.workerId)
        .then((raw) => {
          // Missing or malformed: nothing to follow (the pool falls back once these age out).
          const t = parseTargets(raw);
          if (t) this.latest = t;
        })
        .catch(() => {});
    };
    read();
    this.timer = setInterval(read, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export interface ReporterLinks {
  /** This worker's demand, sent with every report. */
  demand?: () => DemandReport;
  /** Polled while the reporter runs. */
  targets?: TargetsFeed;
}

export class Reporter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly report: () => WorkerReport,
    private readonly links: ReporterLinks = {},
  ) {}

  start(intervalMs = 200): void {
    const send = () => {
      const r = this.report();
      // Demand in its own hash: the gateway reads every report five times a second for
      // placement and has no use for it.
      const tx = this.redis.multi().hset(workersKey(this.prefix), r.id, JSON.stringify(r));
      if (this.links.demand) tx.hset(demandKey(this.prefix), r.id, JSON.stringify(this.links.demand()));
      tx.exec().catch(() => {});
    };
    send();
    this.timer = setInterval(send, intervalMs);
    this.timer.unref();
    this.links.targets?.start(this.redis);
  }

  async stop(id: string): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.links.targets?.stop();
    await this.redis.multi().hdel(workersKey(this.prefix), id).hdel(demandKey(this.prefix), id).exec().catch(() => {});
  }
}
