/**
 * What happens after an async attempt: run it again later, or settle it (succeeded, or
 * dead-lettered). Pure functions of the function's `async` settings, the job's per-trigger
 * overrides (InvocationJob.delivery) and the attempt's outcome, so that they are tested
 * without Redis; the worker applies the answer (common/delivery/settle.ts).
 */
import type { ErrorCode } from '../errors.js';
import { DELIVERY_LIMITS, RETRYABLE_DEFAULT, type Backoff, type DeliveryOptions, type Destination, type AsyncConfig } from '../delivery-spec.js';

export interface DeliveryPolicy {
  maxAttempts: number;
  backoff: Backoff;
  maxEventAgeMs: number;
  retryOn: readonly ErrorCode[];
  onSuccess?: Destination;
  onFailure?: Destination;
  /** The invoke's X-Callback-Url: sent the outcome besides onSuccess/onFailure (destinations.ts). */
  callbackUrl?: string;
}

export const DEFAULT_BACKOFF: Backoff = { type: 'exponential', delayMs: DELIVERY_LIMITS.delayMs.default, jitter: true };

/** The job's overrides, then the function's `async`, then Lambda's defaults. */
export function deliveryPolicy(fn: AsyncConfig | undefined, job: DeliveryOptions | undefined): DeliveryPolicy {
  const retry = job?.retry;
  const policy: DeliveryPolicy = {
    maxAttempts: retry?.maxAttempts ?? fn?.maxAttempts ?? DELIVERY_LIMITS.maxAttempts.default,
    backoff: retry?.backoff ?? fn?.backoff ?? DEFAULT_BACKOFF,
    maxEventAgeMs: retry?.maxEventAgeMs ?? fn?.maxEventAgeMs ?? DELIVERY_LIMITS.maxEventAgeMs.default,
    retryOn: RETRYABLE_DEFAULT,
  };
  const onSuccess = job?.onSuccess ?? fn?.onSuccess;
  const onFailure = job?.onFailure ?? fn?.onFailure;
  if (onSuccess) policy.onSuccess = onSuccess;
  if (onFailure) policy.onFailure = onFailure;
  if (job?.callbackUrl) policy.callbackUrl = job.callbackUrl;
  return policy;
}

/**
 * The wait before the attempt after `attempt` (1-based): delayMs, then doubling when
 * exponential (Lambda's 1 min, 2 min). Jitter draws from the upper half of it, so that
 * retries of a burst spread out but none comes sooner than half the configured delay.
 */
export function backoffDelayMs(backoff: Backoff, attempt: number, random: () => number = Math.random): number {
  const base = backoff.type === 'exponential' ? backoff.delayMs * 2 ** Math.max(0, attempt - 1) : backoff.delayMs;
  const capped = Math.min(base, DELIVERY_LIMITS.delayMs.max);
  return Math.round(backoff.jitter ? capped / 2 + (random() * capped) / 2 : capped);
}

export type NextStep =
  | { kind: 'succeeded' }
  | { kind: 'retry'; delayMs: number }
  | { kind: 'dead-letter'; reason: 'not-retryable' | 'attempts-exhausted' | 'event-too-old' };

export interface AttemptOutcome {
  ok: boolean;
  code?: ErrorCode;
  /** 1-based number of the attempt that just ended. */
  attempt: number;
  /** Epoch ms the event was accepted (InvocationJob.enqueuedAt). */
  acceptedAt: number;
  now: number;
}

export function nextStep(policy: DeliveryPolicy, o: AttemptOutcome, random: () => number = Math.random): NextStep {
  if (o.ok) return { kind: 'succeeded' };
  if (!o.code || !policy.retryOn.includes(o.code)) return { kind: 'dead-letter', reason: 'not-retryable' };
  if (o.attempt >= policy.maxAttempts) return { kind: 'dead-letter', reason: 'attempts-exhausted' };
  const delayMs = backoffDelayMs(policy.backoff, o.attempt, random);
  // Lambda's rule: an event that would be older than its max age when tried again is not.
  if (o.now + delayMs - o.acceptedAt > policy.maxEventAgeMs) return { kind: 'dead-letter', reason: 'event-too-old' };
  return { kind: 'retry', delayMs };
}

/** Whether the event is already past its max age when a worker picks it up. */
export function tooOld(policy: DeliveryPolicy, acceptedAt: number, now: number): boolean {
  return now - acceptedAt > policy.maxEventAgeMs;
}
