/**
 * The worker's last step for an async attempt: try again later, or settle the invocation
 * (its record final, its outcome sent to its destination, its body's room in the queue
 * given back). A failed attempt is a result, not a throw (common/queue.ts, rule 5), so
 * BullMQ's own retries (kept for infrastructure failures) never see it: the job is moved
 * back to BullMQ's delayed set with the due time of the next attempt instead, under the
 * lock the worker holds (moveToDelayed with its token), and the processor throws
 * DelayedError, which BullMQ takes as "not finished, not failed". The next pickup counts
 * in the job's attemptsStarted, which is what the record's `attempts` is made of, so one
 * number tells the record, the context and the retry policy which attempt this is.
 *
 * Every write here is idempotent (the dead letter's id is the invocation's, the record's
 * status only moves forward): a worker that dies half-way leaves a job that runs again.
 */
import { DelayedError, type Job } from 'bullmq';
import type { FunctionSpec } from '../function-spec.js';
import type { InvocationStore } from '../invocations.js';
import type { QueuedBytes } from '../queued-bytes.js';
import { requestOf, type InvocationJob, type InvocationResult } from '../queue.js';
import type { DeadLetter, DeadLetters } from './dead-letters.js';
import { deliveryPolicy, nextStep, tooOld, type DeliveryPolicy } from './retry.js';

/** What a settled invocation's destination is given (common/delivery/destinations.ts). */
export interface Settled {
  job: InvocationJob;
  result: InvocationResult;
  policy: DeliveryPolicy;
  attempts: number;
  deadLetter?: DeadLetter;
}

export interface SettlementDeps {
  invocations: InvocationStore;
  deadLetters: DeadLetters;
  queued: QueuedBytes;
  /** Sends the outcome to its destination, durably (a job of its own) before the invocation's job completes. */
  onSettled?: (s: Settled) => Promise<void>;
  log: (line: string) => void;
}

export interface AttemptInfo {
  /** The function's version as run, when it was found (its `async` settings). */
  spec: FunctionSpec | undefined;
  attempt: number;
  /** Epoch ms when this attempt was picked up. */
  startedAt: number;
}

export class Settlement {
  constructor(private readonly deps: SettlementDeps) {}

  policyOf(job: InvocationJob, spec: FunctionSpec | undefined): DeliveryPolicy {
    return deliveryPolicy(spec?.async, job.delivery);
  }

  /** The event is past its max age at pickup: it is dead-lettered without running. */
  tooOld(job: InvocationJob, spec: FunctionSpec | undefined, now = Date.now()): boolean {
    return tooOld(this.policyOf(job, spec), job.enqueuedAt, now);
  }

  /**
   * Settles the attempt, or schedules the next one and throws DelayedError (which the
   * processor must let through to BullMQ). `expired`: dead-letter at once as too old.
   */
  async settle(job: Job<InvocationJob>, token: string | undefined, result: InvocationResult, info: AttemptInfo, expired = false): Promise<InvocationResult> {
    const data = job.data;
    const policy = this.policyOf(data, info.spec);
    const now = Date.now();
    const step = expired
      ? ({ kind: 'dead-letter', reason: 'event-too-old' } as const)
      : nextStep(policy, { ok: result.ok, ...(result.error ? { code: result.error.code } : {}), attempt: info.attempt, acceptedAt: data.enqueuedAt, now });
    const { invocations } = this.deps;
    if (step.kind === 'retry') {
      const due = now + step.delayMs;
      await invocations.retrying(data.invocationId, result, new Date(due));
      // The job's deadline bounds its wait in the queue: it counts again from the due time.
      const deadline = Math.max(data.deadline, due + (data.deadline - data.enqueuedAt));
      await job.updateData({ ...data, firstAttemptAt: data.firstAttemptAt ?? info.startedAt, deadline });
      await job.moveToDelayed(due, token);
      throw new DelayedError();
    }
    let deadLetter: DeadLetter | undefined;
    if (step.kind === 'dead-letter') {
      const { http } = data;
      deadLetter = {
        id: data.invocationId,
        invocationId: data.invocationId,
        function: data.function,
        version: data.version,
        event: requestOf(data).event,
        error: result.error ?? { code: 'INTERNAL', message: 'the attempt failed without an error' },
        attempts: info.attempt,
        firstAttemptAt: new Date(data.firstAttemptAt ?? info.startedAt).toISOString(),
        lastAttemptAt: new Date(info.startedAt).toISOString(),
        source: data.delivery?.source ?? { kind: 'http' },
        reason: step.reason,
        deadLetteredAt: new Date(now).toISOString(),
        ...(http ? { http: { method: http.method, url: http.url, headers: http.headers } } : {}),
      };
      await this.deps.deadLetters.add(deadLetter);
      await invocations.deadLettered(data.invocationId, result, deadLetter.id);
    } else {
      await invocations.complete(data.invocationId, result);
    }
    if (this.deps.onSettled && (policy.onSuccess || policy.onFailure || policy.callbackUrl)) {
      await this.deps.onSettled({ job: data, result, policy, attempts: info.attempt, ...(deadLetter ? { deadLetter } : {}) });
    }
    // Its body no longer waits to run: the function's room in the queue comes back.
    this.deps.queued.release(data.function, data.invocationId).catch((err: Error) => this.deps.log(`releasing ${data.invocationId}'s queued bytes: ${err.message}`));
    return result;
  }
}
