/**
 * A settled async invocation's outcome, on its way to its destinations: `onSuccess` or
 * `onFailure` (a BullMQ queue, another function, an HTTP callback) and the invoke's
 * X-Callback-Url. The worker hands the outcome over durably before the invocation's job
 * completes: one job per destination in the deliveries queue (`<prefix>` BullMQ queue
 * DELIVERY_QUEUE), its id derived from the invocation's, so a settle that runs again
 * (its worker died before completing the job) adds nothing twice. The scheduler's
 * delivery worker (scheduler/destinations.ts) sends them, with retries.
 *
 *   worker: settle ──(onSettled: Queue.addBulk, awaited)──▶ deliveries queue ──▶ scheduler:
 *     queue    -> a job in the destination queue, id = the invocation's id
 *     function -> acceptAsync, idempotency key "destination:<id>:<on>"
 *     url      -> POST the outcome, signed (signature.ts), under the host policy
 *     openfaas -> POST the function's result, OpenFaaS's X-Callback-Url headers
 *
 * The outcome is the shape of issue 14: {invocationId, function, version, status,
 * result | error, attempts, source}, plus deadLetterId when it was dead-lettered.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Destination, InvocationSource } from '../delivery-spec.js';
import type { ErrorInfo } from '../errors.js';
import type { InvocationResult } from '../queue.js';
import type { Settled } from './settle.js';

export const DELIVERY_QUEUE = 'faasbox-deliveries';
export const DELIVERY_JOB_NAME = 'deliver';

export interface Outcome {
  invocationId: string;
  function: string;
  version: string;
  status: 'succeeded' | 'failed' | 'dead-lettered';
  /** The function's answer: its value, or its HTTP answer ({status, headers, body base64}). */
  result?: unknown;
  error?: ErrorInfo;
  attempts: number;
  source: InvocationSource;
  deadLetterId?: string;
  timings?: InvocationResult['timings'];
  finishedAt: string;
}

export type DeliveryTarget =
  | { kind: 'destination'; on: 'onSuccess' | 'onFailure'; destination: Destination }
  /** X-Callback-Url: the receiver gets the function's result as the body, as OpenFaaS sends it. */
  | { kind: 'openfaas'; url: string; httpResult?: InvocationResult['http'] };

export interface DeliveryJob {
  outcome: Outcome;
  target: DeliveryTarget;
}

export function outcomeOf(s: Settled, now = Date.now()): Outcome {
  const { job, result } = s;
  const status = s.deadLetter ? 'dead-lettered' : result.ok ? 'succeeded' : 'failed';
  return {
    invocationId: job.invocationId,
    function: job.function,
    version: job.version,
    status,
    ...(result.ok ? { result: result.http ?? result.value ?? null } : { error: result.error ?? { code: 'INTERNAL', message: 'the invocation failed without an error' } }),
    attempts: s.attempts,
    source: job.delivery?.source ?? { kind: 'http' },
    ...(s.deadLetter ? { deadLetterId: s.deadLetter.id } : {}),
    timings: result.timings,
    finishedAt: new Date(now).toISOString(),
  };
}

/** The deliveries a settled invocation makes, each with its job id (derived from the invocation's). */
export function deliveriesOf(s: Settled, now = Date.now()): { id: string; data: DeliveryJob }[] {
  const outcome = outcomeOf(s, now);
  const out: { id: string; data: DeliveryJob }[] = [];
  const on = s.result.ok ? 'onSuccess' : 'onFailure';
  const destination = s.policy[on];
  // BullMQ refuses ":" in a custom job id.
  if (destination) out.push({ id: `${outcome.invocationId}.${on}`, data: { outcome, target: { kind: 'destination', on, destination } } });
  if (s.policy.callbackUrl) {
    out.push({ id: `${outcome.invocationId}.callback`, data: { outcome, target: { kind: 'openfaas', url: s.policy.callbackUrl, ...(s.result.http ? { httpResult: s.result.http } : {}) } } });
  }
  return out;
}

/**
 * The worker's side: Settlement's onSettled. Awaited before the invocation's job completes,
 * so an outcome is either in the deliveries queue or its invocation runs (and settles) again.
 */
export class DestinationHandoff {
  private readonly queue: Queue<DeliveryJob>;

  constructor(connection: Redis, prefix: string) {
    this.queue = new Queue<DeliveryJob>(DELIVERY_QUEUE, { connection, prefix });
  }

  readonly onSettled = async (s: Settled): Promise<void> => {
    const jobs = deliveriesOf(s);
    if (jobs.length === 0) return;
    // Kept a day once done: a repeat settle within it finds the id and adds nothing.
    await this.queue.addBulk(jobs.map((j) => ({ name: DELIVERY_JOB_NAME, data: j.data, opts: { jobId: j.id, removeOnComplete: { age: 24 * 3600, count: 10_000 }, removeOnFail: { count: 10_000 } } })));
  };

  async close(): Promise<void> {
    await this.queue.close();
  }
}
