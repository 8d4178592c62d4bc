/**
 * The scheduler service. Today it keeps placement honest: workers report several times a
 * second (worker/report.ts); a worker whose report went stale is presumed dead, its
 * report is dropped so the gateway stops sending it work, and the invocations still
 * waiting in its own queue are moved to the shared queue, where any live worker takes
 * them. Without this, a sync invocation routed to a worker that died would wait until its
 * deadline, and an async one would wait forever.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { INVOCATION_JOB_NAME, INVOCATION_QUEUE, invocationJobOptions, type InvocationJob } from '../common/queue.js';
import { workersKey, type WorkerReport } from './placement.js';

export interface SchedulerConfig {
  redisUrl: string;
  prefix: string;
  /** How often to look at the reports. */
  intervalMs?: number;
  /** A report older than this means the worker is gone. */
  staleMs?: number;
  onRescue?: (e: { worker: string; moved: number }) => void;
}

export interface RunningScheduler {
  /** One pass now (tests; the loop runs by itself). */
  tick(): Promise<void>;
  close(): Promise<void>;
}

export async function startScheduler(cfg: SchedulerConfig): Promise<RunningScheduler> {
  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
  const shared = new Queue<InvocationJob>(INVOCATION_QUEUE, { connection: redis, prefix: cfg.prefix });
  const staleMs = cfg.staleMs ?? 5000;
  let running: Promise<void> | undefined;

  async function rescue(report: WorkerReport): Promise<number> {
    const q = new Queue<InvocationJob>(report.queue, { connection: redis, prefix: cfg.prefix });
    let moved = 0;
    try {
      for (const job of await q.getJobs(['waiting', 'prioritized', 'delayed'])) {
        if (!job?.id) continue;
        // Add first, then remove: a crash in between runs the invocation twice at worst,
        // never zero times. Queue.remove refuses a job a worker has locked meanwhile.
        await shared.add(INVOCATION_JOB_NAME, job.data, invocationJobOptions(job.data));
        if ((await q.remove(job.id)) === 1) moved++;
      }
    } finally {
      await q.close();
    }
    return moved;
  }

  async function tick(): Promise<void> {
    const all = await redis.hgetall(workersKey(cfg.prefix));
    const now = Date.now();
    for (const [id, raw] of Object.entries(all)) {
      let report: WorkerReport;
      try {
        report = JSON.parse(raw) as WorkerReport;
      } catch {
        await redis.hdel(workersKey(cfg.prefix), id);
        continue;
      }
      if (now - report.at < staleMs) continue;
      await redis.hdel(workersKey(cfg.prefix), id);
      const moved = await rescue(report);
      cfg.onRescue?.({ worker: id, moved });
    }
  }

  const timer = setInterval(() => {
    running ??= tick()
      .catch((err: Error) => console.error(`[faasbox] scheduler: ${err.message}`))
      .finally(() => (running = undefined));
  }, cfg.intervalMs ?? 1000);
  timer.unref();

  return {
    tick,
    async close() {
      clearInterval(timer);
      await running;
      await shared.close();
      await redis.quit().catch(() => {});
    },
  };
}
