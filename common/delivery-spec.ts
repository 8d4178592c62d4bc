/**
 * How an asynchronous invocation is delivered: its retries, where its outcome goes, and
 * where it came from. The shapes of issue 14, shared by the deploy body (`async`), the
 * trigger body (`retry`, `onSuccess`, `onFailure`) and the invocation job, so that the
 * gateway, the scheduler's triggers and the worker read one definition.
 *
 * Defaults are Lambda's: 3 attempts in all (2 retries), 1 min then 2 min between them,
 * events older than 6 h are not run again.
 */
import { z } from 'zod';
import type { ErrorCode } from './errors.js';

export const DELIVERY_LIMITS = {
  maxAttempts: { min: 1, max: 100, default: 3 },
  delayMs: { min: 0, max: 24 * 3600_000, default: 60_000 },
  maxEventAgeMs: { min: 1_000, max: 7 * 24 * 3600_000, default: 6 * 3600_000 },
  maxQueued: { min: 1, max: 10_000_000 },
} as const;

/** Failures that spend an attempt and are tried again; anything else ends the invocation at once. */
export const RETRYABLE_DEFAULT: readonly ErrorCode[] = ['FUNCTION_ERROR', 'TIMEOUT', 'RUNTIME_CRASHED', 'OOM_KILLED', 'NO_CAPACITY'];

const int = (min: number, max: number) => z.number().int().min(min).max(max);

export const backoffSchema = z.strictObject({
  type: z.enum(['exponential', 'fixed']).default('exponential'),
  delayMs: int(DELIVERY_LIMITS.delayMs.min, DELIVERY_LIMITS.delayMs.max).default(DELIVERY_LIMITS.delayMs.default),
  jitter: z.boolean().default(true),
});

export const retrySchema = z.strictObject({
  maxAttempts: int(DELIVERY_LIMITS.maxAttempts.min, DELIVERY_LIMITS.maxAttempts.max).optional(),
  backoff: backoffSchema.optional(),
  maxEventAgeMs: int(DELIVERY_LIMITS.maxEventAgeMs.min, DELIVERY_LIMITS.maxEventAgeMs.max).optional(),
});

const queueNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'a queue name is 1-128 letters, digits, ".", "_", ":" or "-"');
/** A source's or destination's Redis: the deployment's own when absent. */
export const redisUrlSchema = z
  .string()
  .max(2048)
  .refine((u) => {
    try {
      return ['redis:', 'rediss:', 'unix:'].includes(new URL(u).protocol);
    } catch {
      return false;
    }
  }, 'redisUrl must be a redis://, rediss:// or unix:// URL');

/** Where an outcome is sent: a BullMQ queue, another function (async), or an HTTP callback. */
export const destinationSchema = z.union([
  z.strictObject({ queue: queueNameSchema, prefix: z.string().min(1).max(64).optional(), redisUrl: redisUrlSchema.optional() }),
  z.strictObject({ function: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a function name') }),
  // The host is checked against the callback allow/deny list when the destination is
  // accepted and again at delivery (DNS may change in between).
  z.strictObject({ url: z.url({ protocol: /^https?$/, error: 'url must be an http(s) URL' }).max(2048) }),
]);

/** `async` in the deploy body. */
export const asyncConfigSchema = z.strictObject({
  maxAttempts: int(DELIVERY_LIMITS.maxAttempts.min, DELIVERY_LIMITS.maxAttempts.max).default(DELIVERY_LIMITS.maxAttempts.default),
  backoff: backoffSchema.default({ type: 'exponential', delayMs: DELIVERY_LIMITS.delayMs.default, jitter: true }),
  maxEventAgeMs: int(DELIVERY_LIMITS.maxEventAgeMs.min, DELIVERY_LIMITS.maxEventAgeMs.max).default(DELIVERY_LIMITS.maxEventAgeMs.default),
  onSuccess: destinationSchema.optional(),
  onFailure: destinationSchema.optional(),
  maxQueued: int(DELIVERY_LIMITS.maxQueued.min, DELIVERY_LIMITS.maxQueued.max).optional(),
});

export type Backoff = z.output<typeof backoffSchema>;
export type RetrySettings = z.output<typeof retrySchema>;
export type Destination = z.output<typeof destinationSchema>;
export type AsyncConfig = z.output<typeof asyncConfigSchema>;

/** Where an invocation came from: recorded in its record, its outcome and its dead letter. */
export type InvocationSource =
  | { kind: 'http' }
  | { kind: 'queue'; trigger: string; queue: string; jobId: string }
  | { kind: 'stream'; trigger: string; stream: string; entryId: string }
  | { kind: 'cron'; trigger: string; scheduledAt: number }
  | { kind: 'redrive'; deadLetter: string }
  /** `depth`: how many destination hops led here (1: straight from `from`), bounded so that functions naming each other cannot loop forever. */
  | { kind: 'destination'; from: string; depth?: number };

/**
 * What an asynchronous job carries beyond the event (InvocationJob.delivery): a trigger's
 * overrides of the function's `async` settings, the idempotency key and the source. A
 * field absent here falls back to the function's `async`, then to the defaults above.
 */
export interface DeliveryOptions {
  retry?: RetrySettings;
  onSuccess?: Destination;
  onFailure?: Destination;
  idempotencyKey?: string;
  source?: InvocationSource;
  /** An async invoke's X-Callback-Url (OpenFaaS's): the function's result is POSTed there whatever the outcome. */
  callbackUrl?: string;
}
