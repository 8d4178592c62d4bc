/**
 * Accepting an async invocation, for every producer (the gateway's async invoke, a
 * redrive, a destination that is a function, the scheduler's triggers): idempotency key,
 * then the function's room in the queue (bytes, and async.maxQueued invocations), then
 * the record and the job. Once acceptAsync resolves, the job is in Redis (BullMQ's add
 * has returned; with appendonly and appendfsync always it is on disk too), so a 202 or a
 * source's acknowledgement after it is safe.
 */
import type { FunctionSpec } from '../function-spec.js';
import { QueueFullError, QueuedCountFullError } from '../errors.js';
import type { InvocationClient } from '../invocation-client.js';
import type { InvocationStore } from '../invocations.js';
import { QueuedBytes, JOB_OVERHEAD_BYTES } from '../queued-bytes.js';
import type { InvocationJob } from '../queue.js';
import type { IdempotencyKeys } from './idempotency.js';

export interface AcceptDeps {
  invocations: InvocationStore;
  queue: Pick<InvocationClient, 'enqueue' | 'withdraw'>;
  queued: QueuedBytes;
  idempotency: IdempotencyKeys;
  /** StorageLimits.queuedBytesPerFunction. */
  roomBytes: number;
}

export interface Accepted {
  invocationId: string;
  /** A repeat under an idempotency key: nothing was enqueued, `invocationId` is the first one's. */
  repeat: boolean;
}

/** What the job holds in Redis besides its fixed overhead: its body and request headers. */
export function jobBytes(job: InvocationJob): number {
  let bytes = JOB_OVERHEAD_BYTES;
  if (job.body) bytes += 'text' in job.body ? Buffer.byteLength(job.body.text) : Math.ceil((job.body.base64.length * 3) / 4);
  else if (job.event !== undefined) bytes += Buffer.byteLength(JSON.stringify(job.event) ?? '');
  for (const [k, v] of Object.entries(job.http?.headers ?? {})) bytes += k.length + v.length;
  return bytes;
}

/**
 * Accepts `job` (mode async) for `spec`'s function. Throws QUEUE_FULL (QueueFullError or
 * QueuedCountFullError) when the function has no room; the caller answers 429 with Retry-After.
 * `claimKey`: what a repeat is told apart by, the job's idempotency key unless given (a
 * trigger scopes it by its source, so that job "1" of two queues are two events); null
 * claims none.
 */
export async function acceptAsync(
  deps: AcceptDeps,
  spec: Pick<FunctionSpec, 'name' | 'async'>,
  job: InvocationJob,
  bytes = jobBytes(job),
  claimKey: string | null = job.delivery?.idempotencyKey ?? null,
): Promise<Accepted> {
  const fn = job.function;
  const id = job.invocationId;
  const key = claimKey ?? undefined;
  if (key !== undefined) {
    const owner = await deps.idempotency.claim(fn, key, id);
    // The key held by this very id is an earlier try of this same acceptance (a derived id:
    // a trigger's event taken again after its taker died between the claim and the writes
    // below); it goes on, as every write below is idempotent by id. Answering "repeat" here
    // would wait forever for an invocation that was never written.
    if (owner !== undefined && owner !== id) return { invocationId: owner, repeat: true };
  }
  const dropKey = () => (key === undefined ? Promise.resolve() : deps.idempotency.drop(fn, key, id));
  let admitted: 'admitted' | 'bytes' | 'count';
  try {
    admitted = await deps.queued.admitCounted(fn, id, bytes, deps.roomBytes, job.deadline, spec.async?.maxQueued ?? 0);
  } catch (err) {
    await dropKey().catch(() => {});
    throw err;
  }
  if (admitted !== 'admitted') {
    await dropKey();
    throw admitted === 'count' ? new QueuedCountFullError(fn, spec.async!.maxQueued!) : new QueueFullError(fn, deps.roomBytes);
  }
  const record = { id, function: fn, version: job.version, mode: job.mode, createdAt: new Date(job.enqueuedAt) };
  // Record and job are written at once, on two connections: the order in which they
  // land does not matter, as a record's status only moves forward (invocations.ts). If
  // either is refused (a full Redis), neither stays: a 503 must not leave a record that
  // waits for a job, or a job the caller will submit again.
  const written = await Promise.allSettled([deps.invocations.create(record), deps.queue.enqueue(job)]);
  const refused = written.find((w): w is PromiseRejectedResult => w.status === 'rejected');
  if (refused) {
    await Promise.allSettled([deps.queue.withdraw(id), deps.invocations.discard(id), deps.queued.release(fn, id), dropKey()]);
    throw refused.reason;
  }
  return { invocationId: id, repeat: false };
}

/**
 * Backpressure for producers that can wait (a trigger stops taking events from its source
 * while this is false): whether the function has room for one more async invocation.
 */
export async function hasRoom(deps: Pick<AcceptDeps, 'queued' | 'roomBytes'>, spec: Pick<FunctionSpec, 'name' | 'async'>, bytes = JOB_OVERHEAD_BYTES): Promise<boolean> {
  const max = spec.async?.maxQueued;
  if (max !== undefined && (await deps.queued.count(spec.name)) >= max) return false;
  return (await deps.queued.total(spec.name)) + bytes <= deps.roomBytes;
}
