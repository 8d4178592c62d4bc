/**
 * The queue contract between whoever enqueues invocations (gateway, scheduler triggers) and
 * the worker that runs them. Every invocation is one BullMQ job on INVOCATION_QUEUE whose
 * jobId is the invocation id.
 *
 * The worker's side of the contract:
 *   1. On pickup, start the record (InvocationStore.start: it makes the record of a sync
 *      invocation, which the gateway does not write). If Date.now() > job.data.deadline, do
 *      not run it: complete the record as failed with NO_CAPACITY and return that result (a
 *      sync caller has been answered 503 by then). A sync job started before (on a worker
 *      that died: job.attemptsStarted > 1 after BullMQ's stalled check, or `restarted`)
 *      is not run again either: it fails with WORKER_LOST (its caller may have had that
 *      answer already, and may have retried).
 *   2. Otherwise resolve the version with
 *      registry.getVersion(function, version) (immutable: cache it) and the code with
 *      registry.getCode(spec.code.digest); a missing version means the function was deleted:
 *      return FUNCTION_NOT_FOUND.
 *   3. Stream stdout/stderr into the record (InvocationStore.appendOutput).
 *   4. Write the final record (InvocationStore.complete) and only then return the
 *      InvocationResult from the processor, so a client that polls after the reply sees it.
 *      (A sync invocation's reply is the result itself: its record write may be sent and
 *      not awaited: it is on the wire before the job completes.)
 *      An async invocation's queued bytes are then released (QueuedBytes.release).
 *   5. Outcomes of the function (its error, timeout, OOM, crash) are results with ok:false,
 *      never thrown: a thrown error means the infrastructure failed and BullMQ may retry.
 */
import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import type { DeliveryOptions } from './delivery-spec.js';
import { ERROR_CODES, type ErrorCode, type ErrorInfo } from './errors.js';
import { DEFAULT_STORAGE_LIMITS, type StorageLimits } from './limits.js';

export const INVOCATION_QUEUE = 'invocations';
export const INVOCATION_JOB_NAME = 'invoke';

export type InvocationMode = 'sync' | 'async';
export type StartKind = 'warm' | 'specialized' | 'cold';
export const START_KINDS: readonly StartKind[] = ['warm', 'specialized', 'cold'];

/** The HTTP request that caused the invocation, for Web-standard (Request => Response) handlers. */
export interface HttpRequestData {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  headers: Record<string, string>;
  /** base64 of the raw body; empty string for none. */
  body: string;
}

export interface InvocationJob {
  invocationId: string;
  function: string;
  version: string;
  /**
   * The handler's event: the parsed JSON body of the invoke request (null when empty).
   * Absent when `body` holds the request's bytes instead; read both through requestOf().
   */
  event?: unknown;
  /**
   * The request body's bytes when the event does not spell them exactly (bodyFields()):
   * as text when they are valid UTF-8 and escape to less than base64, else base64.
   */
  body?: { text: string } | { base64: string };
  /** The HTTP request; its body is the event's or `body` (jobs of older gateways carry it here). */
  http?: Omit<HttpRequestData, 'body'> & { body?: string };
  mode: InvocationMode;
  /** Epoch ms when the job was enqueued. */
  enqueuedAt: number;
  /** Epoch ms after which a worker must not start the job (see rule 1 above). */
  deadline: number;
  /**
   * Times a worker picked the job up and put it back because the function was at its
   * concurrency limit (async only), so that they do not count as attempts.
   */
  throttled?: number;
  /** Moved out of a dead worker's queue after it had started there (common/queue-handover.ts). */
  restarted?: boolean;
  /** Async only: a trigger's overrides of the function's `async` settings, the idempotency key, the source (common/delivery-spec.ts). */
  delivery?: DeliveryOptions;
  /** Async only: epoch ms when its first attempt started; set when a failed attempt is retried (common/delivery/). */
  firstAttemptAt?: number;
  /**
   * Times a draining worker stopped the job at the end of its grace period and put it back
   * in the queue (worker/invoker.ts, returnAll), so that they do not count as attempts.
   */
  returned?: number;
  /**
   * Attempts spent in earlier BullMQ jobs of this invocation: a handover (common/queue-handover.ts)
   * moves it to another queue as a new job, whose own counts start from 0.
   */
  priorAttempts?: number;
}

/** What attemptOf reads of a BullMQ job. */
export interface JobCounts {
  data: InvocationJob;
  /** BullMQ: the times a worker took the job (a start a crash cut short included). */
  attemptsStarted: number;
  /** BullMQ: the times its processor threw (an infrastructure failure, rule 5). */
  attemptsMade: number;
  processedOn?: number | undefined;
}

/** The attempts spent on the invocation so far: the job's starts but the throttled and returned ones, plus its earlier jobs'. */
function spentAttempts(job: JobCounts): number {
  const d = job.data;
  return (d.priorAttempts ?? 0) + job.attemptsStarted - (d.throttled ?? 0) - (d.returned ?? 0);
}

/**
 * Which attempt (1-based) a worker's pickup of the job is: the one number the record, the
 * handler's context and the retry policy use. Counted from the job's starts, so that a
 * start a crash cut short counts (a retry's delayed restart too), and a throttled pickup or
 * one a drain put back does not.
 */
export function attemptOf(job: JobCounts): number {
  return Math.max(spentAttempts(job), job.attemptsMade + 1);
}

/**
 * The data a job carries into the new job that replaces it on another queue (a handover):
 * the attempts it spent, not the counters of its own starts, and `restarted` once it had
 * started (rule 1).
 */
export function movedData(job: JobCounts): InvocationJob {
  const { throttled: _throttled, returned: _returned, ...data } = job.data;
  const spent = Math.max(0, spentAttempts(job));
  return { ...data, ...(spent > 0 ? { priorAttempts: spent } : {}), ...(job.processedOn ? { restarted: true } : {}) };
}

/**
 * A job's body, stored once. A job used to carry the parsed event and a base64 copy of the
 * raw body: 2.3 times the body in Redis. Most clients send compact JSON, whose bytes are
 * exactly JSON.stringify of the event, so the event alone is kept and the raw bytes are
 * derived from it; any other body (spaces, escapes, number spellings) is kept as its bytes
 * and the event is parsed from them at the worker, as the gateway parsed it: at most 4/3
 * of the body.
 */
export function bodyFields(event: unknown, raw: Buffer): Pick<InvocationJob, 'event' | 'body'> {
  if (raw.length > 0) {
    let spelled: string | undefined;
    try {
      spelled = JSON.stringify(event);
    } catch {
      // Too deep to serialise here: the bytes themselves travel.
    }
    if (spelled !== undefined && Buffer.byteLength(spelled) === raw.length && raw.equals(Buffer.from(spelled))) return { event };
  }
  const text = raw.toString('utf8');
  // Text is escaped once more inside the job's JSON (every quote of a JSON body): when
  // that costs more than base64's third, base64 is the smaller copy.
  const asText = Buffer.byteLength(text) === raw.length && Buffer.from(text).equals(raw) && JSON.stringify(text).length <= Math.ceil(raw.length / 3) * 4;
  return { body: asText ? { text } : { base64: raw.toString('base64') } };
}

/** What the handler is given: its event, and the HTTP request with its body (base64). */
export function requestOf(job: InvocationJob): { event: unknown; http?: HttpRequestData } {
  let event: unknown;
  let raw: Buffer | undefined;
  if (job.body) {
    raw = 'text' in job.body ? Buffer.from(job.body.text) : Buffer.from(job.body.base64, 'base64');
    event = raw.length === 0 ? null : (JSON.parse(raw.toString('utf8')) as unknown);
  } else {
    event = job.event ?? null;
  }
  if (!job.http) return { event };
  if (job.http.body !== undefined) return { event, http: job.http as HttpRequestData };
  raw ??= job.body || job.event === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(job.event));
  return { event, http: { ...job.http, body: raw.toString('base64') } };
}

export interface HttpResponseData {
  status: number;
  headers: Record<string, string>;
  /** base64 of the body. */
  body: string;
}

export const timingsSchema = z.object({
  queueMs: z.number().nonnegative(),
  initMs: z.number().nonnegative(),
  /** Only when a warm container frozen while idle was thawed for this invocation. */
  thawMs: z.number().nonnegative().optional(),
  execMs: z.number().nonnegative(),
  totalMs: z.number().nonnegative(),
});
export type Timings = z.infer<typeof timingsSchema>;

const errorInfoSchema = z.object({
  code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
  message: z.string(),
  stack: z.string().optional(),
  details: z.unknown().optional(),
});

/** What the worker's processor returns; the gateway checks it with this schema. */
export const invocationResultSchema = z.object({
  ok: z.boolean(),
  /** The handler's JSON value, when it returned a plain value. */
  value: z.unknown().optional(),
  /** The handler's HTTP-style response, when it returned one. */
  http: z
    .object({
      status: z.number().int().min(100).max(599),
      headers: z.record(z.string(), z.string()),
      body: z.string(),
    })
    .optional(),
  error: errorInfoSchema.optional(),
  startKind: z.enum(START_KINDS as [StartKind, ...StartKind[]]),
  timings: timingsSchema,
  usage: z
    .object({
      cpuMs: z.number().optional(),
      memoryPeakBytes: z.number().optional(),
      ioReadBytes: z.number().optional(),
      ioWriteBytes: z.number().optional(),
      netRxBytes: z.number().optional(),
      netTxBytes: z.number().optional(),
    })
    .optional(),
  workerId: z.string().optional(),
});

export interface InvocationResult {
  ok: boolean;
  value?: unknown;
  http?: HttpResponseData;
  error?: ErrorInfo;
  startKind: StartKind;
  timings: Timings;
  /** netRxBytes/netTxBytes: a bridge function's eth0 traffic during the invocation (received, sent). */
  usage?: { cpuMs?: number; memoryPeakBytes?: number; ioReadBytes?: number; ioWriteBytes?: number; netRxBytes?: number; netTxBytes?: number };
  workerId?: string;
}

// The schema and the interface must describe the same thing.
type _SchemaMatches = z.infer<typeof invocationResultSchema> extends InvocationResult ? true : never;
const _schemaMatches: _SchemaMatches = true;
void _schemaMatches;

export const SYNC_KEEP_FAILED_S = 24 * 3600;
export const ASYNC_KEEP_COMPLETED_S = 3600;
export const ASYNC_KEEP_FAILED_S = 7 * 24 * 3600;

/**
 * Job options per mode.
 *
 * sync: the reply travels on the queue's event stream (QueueEvents 'completed' carries the
 * return value), and the record holds it for later, so the job itself is useless once done:
 * removeOnComplete:true. One attempt: the caller is waiting and has its own deadline; a
 * crashed worker's job still comes back once through BullMQ's stalled-job check, and is
 * then answered WORKER_LOST (rule 1): at most once, as Lambda's synchronous invocations.
 *
 * async: a 202 promised the invocation will run, so infrastructure failures are retried
 * with backoff, and finished jobs are kept a while for inspection.
 */
export function invocationJobOptions(
  job: Pick<InvocationJob, 'invocationId' | 'mode'>,
  kept: Pick<StorageLimits, 'completedJobsKept' | 'failedJobsKept'> = DEFAULT_STORAGE_LIMITS,
): JobsOptions {
  // Failed jobs are capped by count as well as age: their age alone let them pile up
  // without bound for a week.
  if (job.mode === 'sync') {
    return {
      jobId: job.invocationId,
      attempts: 1,
      removeOnComplete: true,
      removeOnFail: { age: SYNC_KEEP_FAILED_S, count: kept.failedJobsKept },
    };
  }
  return {
    jobId: job.invocationId,
    attempts: 3,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: ASYNC_KEEP_COMPLETED_S, count: kept.completedJobsKept },
    removeOnFail: { age: ASYNC_KEEP_FAILED_S, count: kept.failedJobsKept },
  };
}
