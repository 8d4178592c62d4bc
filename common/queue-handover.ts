/**
 * Handing a worker's own queue over to the shared queue, where any live worker takes its
 * invocations: the scheduler does it for a worker that went silent (scheduler/main.ts),
 * a stopping worker does it for itself at once (worker/main.ts). Both register the queue
 * as an orphan (orphanQueuesKey), so that whatever still lands in it later (a gateway
 * that placed an invocation on an old report) is moved on the scheduler's next tick.
 *
 * What moves: every job waiting or delayed there, and a started one only once its lock
 * has lapsed: its worker renews the lock while it lives, so a locked job is left to it.
 * A started job moves marked `restarted`; a sync one is then answered WORKER_LOST by the
 * worker that takes it instead of running again (common/queue.ts, rule 1). Once nothing
 * is left, the queue's keys go: worker ids are per process, nothing will use it again.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { INVOCATION_JOB_NAME, invocationJobOptions, movedData, type InvocationJob } from './queue.js';

export interface HandOverReport {
  moved: number;
  /** Nothing is left in the queue, and its keys are gone. */
  empty: boolean;
}

export async function handOver(redis: Redis, prefix: string, name: string, shared: Queue<InvocationJob>): Promise<HandOverReport> {
  const q = new Queue<InvocationJob>(name, { connection: redis, prefix });
  let moved = 0;
  let left = 0;
  try {
    for (const job of await q.getJobs(['waiting', 'prioritized', 'delayed', 'active'])) {
      if (!job?.id) continue;
      if ((await redis.exists(`${q.toKey(job.id)}:lock`)) === 1) {
        left++;
        continue;
      }
      // It keeps the attempts it spent here, which the new job's own counts do not know.
      const data = movedData(job);
      // Add first, then remove: a crash in between runs the invocation twice at worst,
      // never zero times. Queue.remove refuses a job that is locked meanwhile.
      await shared.add(INVOCATION_JOB_NAME, data, invocationJobOptions(data));
      if ((await q.remove(job.id)) === 1) moved++;
      else left++;
    }
    const empty = left === 0 && (await q.getJobCountByTypes('waiting', 'prioritized', 'delayed', 'active')) === 0;
    if (empty) await q.obliterate({ force: true });
    return { moved, empty };
  } finally {
    await q.close();
  }
}

export { orphanQueuesKey } from './keys.js';
