/**
 * The queue contract between whoever enqueues invocations (gateway, scheduler triggers) and
 * the worker that runs them. Every invocation is one BullMQ job on INVOCATION_QUEUE whose
 * jobId is the invocation id.
 *
 * The worker's side of the contract:
 *   1. On pickup, start the record (InvocationStore.start: it makes the record of a sync
 *      invocation, which the gateway does not write). If Date.now() > job.data.deadline, do
 *      not run it: complete the record as failed with NO_CAPACITY and return that result (a
 *      sync caller has been answered 503 by then).
 *   2. Otherwise resolve the version with
 *      registry.getVersion(function, version) (immutable: cache it) and the code with
 *      registry.getCode(spec.code.digest); a missing version means the function was deleted:
 *      return FUNCTION_NOT_FOUND.
 *   3. Stream stdout/stderr into the record (InvocationStore.appendOutput).
 *   4. Write the final record (InvocationStore.complete) and only then return the
 *      InvocationResult from the processor, so a client that polls after the reply sees it.
 *      (A sync invocation's reply is the result itself: its record write may be sent and
 *      not awaited: it is on the wire before the job completes.)
 *   5. Outcomes of the function (its error, timeout, OOM, crash) are results with ok:false,
 *      never thrown: a thrown error means the infrastructure failed and BullMQ may retry.
 */
import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode, type ErrorInfo } from './errors.js';

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
  /** The handler's event: the parsed JSON body of the invoke request (null when empty). */
  event: unknown;
  http?: HttpRequestData;
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
  usage?: { cpuMs?: number; memoryPeakBytes?: number };
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
 * crashed worker's job still comes back once through BullMQ's stalled-job check.
 *
 * async: a 202 promised the invocation will run, so infrastructure failures are retried
 * with backoff, and finished jobs are kept a while for inspection.
 */
export function invocationJobOptions(job: Pick<InvocationJob, 'invocationId' | 'mode'>): JobsOptions {
  if (job.mode === 'sync') {
    return {
      jobId: job.invocationId,
      attempts: 1,
      removeOnComplete: true,
      removeOnFail: { age: SYNC_KEEP_FAILED_S },
    };
  }
  return {
    jobId: job.invocationId,
    attempts: 3,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: ASYNC_KEEP_COMPLETED_S, count: 10_000 },
    removeOnFail: { age: ASYNC_KEEP_FAILED_S },
  };
}
