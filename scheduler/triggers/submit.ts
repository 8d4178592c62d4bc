/**
 * A trigger's events become async invocations through the gateway's own path
 * (common/delivery/accept.ts: acceptAsync): the same record, job, room in the queue
 * (queued bytes and async.maxQueued) and deadline, plus `delivery` (the trigger's retry and
 * destinations, the idempotency key, the source).
 *
 * The invocation id is derived from the trigger and the event's identity (a source job's
 * id and creation time, a stream entry's id, a cron tick's time): an event taken twice
 * (its first taker died before acknowledging it) finds its invocation and waits for it
 * instead of running it again. A queue job's id is also its idempotency key for 24 h,
 * scoped by its queue (claimKey): the producer adding the same id again gets the first
 * invocation's outcome.
 *
 * An event the function cannot be given (checkEvent: too large, not JSON, too deep) goes
 * to the function's dead letters with its reason (reject), and its source acknowledges it;
 * so does a batch's item the function reported failed in each attempt (itemFailed).
 */
import { createHash } from 'node:crypto';
import type { DeliveryOptions, InvocationSource } from '../../common/delivery-spec.js';
import { FaasboxError, FunctionNotFoundError, VersionNotFoundError } from '../../common/errors.js';
import { acceptAsync, type AcceptDeps } from '../../common/delivery/accept.js';
import type { DeadLetter, DeadLetters } from '../../common/delivery/dead-letters.js';
import type { InvocationRecord } from '../../common/invocations.js';
import { JOB_OVERHEAD_BYTES } from '../../common/queued-bytes.js';
import type { InvocationJob } from '../../common/queue.js';
import type { FunctionRegistry } from '../../common/registry.js';
import type { TriggerRecord } from '../../common/triggers.js';
import { checkEvent, type EventBounds } from './event.js';
import { isFinal, type FinalWatcher } from './finals.js';

export interface SubmitSettings extends EventBounds {
  queuedBytesPerFunction: number;
  /** An invocation not started within this age is dropped (the gateway's asyncMaxAgeMs). */
  maxEventAgeMs: number;
}

/** Thrown to a waiting submit when its consumer stops. */
export class ConsumerStoppedError extends Error {
  constructor() {
    super('the trigger stopped');
    this.name = 'ConsumerStoppedError';
  }
}

/** A UUID-shaped id from the trigger's uid and the event's identity. */
export function invocationIdFor(triggerUid: string, eventKey: string): string {
  const h = createHash('sha256').update(`${triggerUid}\n${eventKey}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** What a rejected event's dead letter keeps of it: the event itself when it can be stored, else its size and a preview. */
const PREVIEW_CHARS = 1024;

export type SubmitDelivery = Pick<DeliveryOptions, 'idempotencyKey' | 'source'> & {
  /** Claimed for 24 h against repeats (acceptAsync's claimKey); absent: none. */
  claimKey?: string;
};

export class TriggerSubmitter {
  private readonly accept: AcceptDeps;

  constructor(
    private readonly registry: FunctionRegistry,
    accept: Omit<AcceptDeps, 'roomBytes'>,
    private readonly deadLetters: DeadLetters,
    private readonly finals: FinalWatcher,
    private readonly settings: SubmitSettings,
  ) {
    this.accept = { ...accept, roomBytes: settings.queuedBytesPerFunction };
  }

  get bounds(): EventBounds {
    return this.settings;
  }

  private async versionOf(t: TriggerRecord): Promise<string> {
    const { function: fn, version } = t.spec;
    if (version) {
      const versions = await this.registry.listVersions(fn);
      if (!versions.some((v) => v.version === version)) throw new VersionNotFoundError(fn, version);
      return version;
    }
    const current = await this.registry.currentVersion(fn);
    if (!current) throw new FunctionNotFoundError(fn);
    return current;
  }

  /**
   * Submits the event (unless its invocation exists already) and resolves with the final
   * record. Waits while the function has no room: the source keeps the rest.
   */
  async invoke(t: TriggerRecord, event: unknown, eventKey: string, delivery: SubmitDelivery, stop: AbortSignal): Promise<InvocationRecord> {
    const bytes = checkEvent(event, this.settings) + JOB_OVERHEAD_BYTES;
    let id = invocationIdFor(t.uid, eventKey);
    let final = this.finals.wait(id);
    try {
      const existing = await this.accept.invocations.get(id);
      if (existing && isFinal(existing)) return existing;
      // Submitted again even when its record exists: a taker that died between the record
      // and the job (acceptAsync writes both at once) left a record no job will finish.
      // Every write of acceptAsync is idempotent by id (BullMQ adds a job id once), so a
      // record whose job is there, queued or running, is left as it is.
      const owner = await this.submit(t, id, event, bytes, delivery, stop);
      if (owner !== id) {
        // A repeat of an event accepted before (its claim key): its invocation's outcome is this one's.
        this.finals.forget(id);
        id = owner;
        final = this.finals.wait(id);
        const first = await this.accept.invocations.get(id);
        if (first && isFinal(first)) return first;
      }
      return await untilAborted(final, stop);
    } finally {
      this.finals.forget(id);
    }
  }

  /** The accepted invocation's id: `id`, or the first one's under the claim key. */
  private async submit(t: TriggerRecord, id: string, event: unknown, bytes: number, delivery: SubmitDelivery, stop: AbortSignal): Promise<string> {
    const version = await this.versionOf(t);
    const settings = await this.registry.asyncSettingsOf(t.spec.function, version);
    const enqueuedAt = Date.now();
    const { claimKey, ...options } = delivery;
    const job: InvocationJob = {
      invocationId: id,
      function: t.spec.function,
      version,
      event,
      mode: 'async',
      enqueuedAt,
      deadline: enqueuedAt + this.settings.maxEventAgeMs,
      delivery: {
        ...options,
        ...(t.spec.retry ? { retry: t.spec.retry } : {}),
        ...(t.spec.onSuccess ? { onSuccess: t.spec.onSuccess } : {}),
        ...(t.spec.onFailure ? { onFailure: t.spec.onFailure } : {}),
      },
    };
    const spec = { name: t.spec.function, ...(settings ? { async: settings } : {}) };
    // Backpressure: a full function takes no more from this trigger; 50 ms doubling to 2 s.
    for (let wait = 50; ; wait = Math.min(wait * 2, 2000)) {
      try {
        return (await acceptAsync(this.accept, spec, job, bytes, claimKey ?? null)).invocationId;
      } catch (err) {
        if (!(err instanceof FaasboxError && err.code === 'QUEUE_FULL')) throw err;
      }
      if (stop.aborted) throw new ConsumerStoppedError();
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /**
   * An event the function cannot be given: to its dead letters with the reason (source
   * and event identity kept, so the operator finds the job or entry), under the id its
   * invocation would have had, so a source that hands it over again adds no second entry.
   */
  async reject(t: TriggerRecord, event: unknown, eventKey: string, source: InvocationSource, reason: string): Promise<string> {
    return this.deadLetter(t, storable(event, this.settings), eventKey, source, { reason: 'event-rejected', error: { code: 'VALIDATION_FAILED', message: reason }, attempts: 0 });
  }

  /**
   * A batch's item the function reported failed in each attempt: its own dead letter (the
   * batch invocation succeeded, so delivery wrote none), its event the item as an array of
   * one, what the function is given. Its id is the item's, so a source that hands the item
   * over again after a crash finds it there instead of adding a second.
   */
  async itemFailed(t: TriggerRecord, event: unknown, eventKey: string, source: InvocationSource, failure: { reason: string; attempts: number; invocationId: string }): Promise<string> {
    const error = { code: 'FUNCTION_ERROR' as const, message: failure.reason };
    return this.deadLetter(t, [event], eventKey, source, { reason: 'batch-item-failed', error, attempts: failure.attempts, invocationId: failure.invocationId });
  }

  private async deadLetter(t: TriggerRecord, event: unknown, eventKey: string, source: InvocationSource, dl: Pick<DeadLetter, 'reason' | 'error' | 'attempts'> & { invocationId?: string }): Promise<string> {
    const version = await this.versionOf(t);
    const id = invocationIdFor(t.uid, eventKey);
    const now = new Date().toISOString();
    await this.deadLetters.add({
      id,
      invocationId: dl.invocationId ?? id,
      function: t.spec.function,
      version,
      event,
      error: dl.error,
      attempts: dl.attempts,
      firstAttemptAt: now,
      lastAttemptAt: now,
      source,
      reason: dl.reason,
      deadLetteredAt: now,
    });
    return id;
  }
}

/** The event when it fits the bounds, else what can be told of it (it may be what made it unacceptable). */
function storable(event: unknown, bounds: EventBounds): unknown {
  try {
    checkEvent(event, bounds);
    return event;
  } catch {
    let text: string | undefined;
    try {
      text = JSON.stringify(event);
    } catch {
      text = undefined;
    }
    return text === undefined
      ? { rejected: true, json: false }
      : { rejected: true, bytes: Buffer.byteLength(text), preview: text.slice(0, PREVIEW_CHARS) };
  }
}

/** The promise's value, or ConsumerStoppedError once the signal aborts. */
function untilAborted<T>(promise: Promise<T>, stop: AbortSignal): Promise<T> {
  if (stop.aborted) return Promise.reject(new ConsumerStoppedError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ConsumerStoppedError());
    stop.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        stop.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        stop.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}
