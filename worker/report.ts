/**
 * What this worker tells the rest of the system, several times a second: its idle warm
 * containers per function version, idle stem cells per shape, free memory budget and
 * load. The gateway places invocations from these reports (scheduler/placement.ts).
 */
import type { Redis } from 'ioredis';
import type { Pool } from './pool/pool.js';
import { workersKey, type WorkerReport } from '../scheduler/placement.js';

export function reportOf(id: string, queue: string, pool: Pool, budgetMb: number, inflight: number): WorkerReport {
  const warm: Record<string, number> = {};
  const stems: Record<string, number> = {};
  for (const s of pool.slots()) {
    if (s.state !== 'idle') continue;
    if (s.kind === 'function' && s.fn) warm[s.fn] = (warm[s.fn] ?? 0) + 1;
    else if (s.kind === 'stem') stems[`${s.runtime}/${s.memoryMb}`] = (stems[`${s.runtime}/${s.memoryMb}`] ?? 0) + 1;
  }
  return { id, queue, at: Date.now(), freeMb: budgetMb - pool.usedMb(), warm, stems, inflight };
}

export class Reporter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly report: () => WorkerReport,
  ) {}

  start(intervalMs = 200): void {
    const send = () => {
      const r = this.report();
      this.redis.hset(workersKey(this.prefix), r.id, JSON.stringify(r)).catch(() => {});
    };
    send();
    this.timer = setInterval(send, intervalMs);
    this.timer.unref();
  }

  async stop(id: string): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.redis.hdel(workersKey(this.prefix), id).catch(() => {});
  }
}
