/**
 * Stand-ins for the parts of a worker that the gateway's lanes see, for tests of
 * InvocationClient against a real Redis: a worker's placement report, a sync job, and a
 * BullMQ worker on the worker's own queue that answers after a delay.
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { INVOCATION_QUEUE, type InvocationJob } from '../../common/queue.js';
import { workerQueueName, type WorkerReport } from '../../common/policy/placement.js';

export function report(id: string): WorkerReport {
  return { id, queue: workerQueueName(INVOCATION_QUEUE, id), at: Date.now(), freeMb: 1024, warm: { 'f@v1': 1 }, stems: {}, inflight: 0 };
}

export function job(): InvocationJob {
  const now = Date.now();
  return { invocationId: randomUUID(), function: 'f', version: 'v1', event: {}, mode: 'sync', enqueuedAt: now, deadline: now + 10_000 };
}

/**
 * A stand-in worker on its own queue that answers after delayMs; its id goes with each job
 * it takes (processedBy), as the real worker's does.
 */
export function standIn(redisUrl: string, prefix: string, id: string, delayMs: number): { worker: Worker; close: () => Promise<void> } {
  const conn = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(
    workerQueueName(INVOCATION_QUEUE, id),
    async () => {
      await new Promise((r) => setTimeout(r, delayMs));
      return { ok: true, value: id };
    },
    { connection: conn, prefix, name: id },
  );
  return {
    worker,
    close: async () => {
      await worker.close();
      conn.disconnect();
    },
  };
}
