/**
 * Accepting an asynchronous invocation: the one path the gateway's async invoke and the
 * scheduler's triggers both take. Once submitAsync resolves 'queued', the record exists
 * and the job is durable in Redis; if either write is refused, neither stays.
 */
import type { InvocationClient } from './invocation-client.js';
import type { InvocationStore, NewInvocation } from './invocations.js';
import type { QueuedBytes } from './queued-bytes.js';
import type { InvocationJob } from './queue.js';

export interface AsyncSubmitter {
  invocations: InvocationStore;
  queue: InvocationClient;
  queued: QueuedBytes;
}

/**
 * Admits `bytes` against the function's bound on queued bytes (`roomBytes`), then writes
 * record and job. 'full': nothing was written, the caller answers or waits (QUEUE_FULL).
 */
export async function submitAsync(deps: AsyncSubmitter, job: InvocationJob, bytes: number, roomBytes: number): Promise<'queued' | 'full'> {
  const id = job.invocationId;
  if (!(await deps.queued.admit(job.function, id, bytes, roomBytes, job.deadline))) return 'full';
  const record: NewInvocation = { id, function: job.function, version: job.version, mode: 'async', createdAt: new Date(job.enqueuedAt) };
  // Record and job are written at once, on two connections: the order in which they
  // land does not matter, as a record's status only moves forward (invocations.ts).
  // If either is refused (a full Redis), neither stays: a 503 must not leave a record
  // that waits for a job, or a job the caller will submit again.
  const written = await Promise.allSettled([deps.invocations.create(record), deps.queue.enqueue(job)]);
  const refused = written.find((w): w is PromiseRejectedResult => w.status === 'rejected');
  if (refused) {
    await Promise.allSettled([deps.queue.withdraw(id), deps.invocations.discard(id), deps.queued.release(job.function, id)]);
    throw refused.reason;
  }
  return 'queued';
}
