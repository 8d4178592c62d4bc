/**
 * A trigger's events become async invocations through the gateway's own path
 * (common/async-submit.ts): the same record, job, queued-bytes bound and deadline, plus
 * `delivery` (the trigger's retry and destinations, the idempotency key, the source).
 *
 * The invocation id is derived from the trigger and the event's identity (a source job's
 * id and creation time, a stream entry's id, a cron tick's time): an event taken twice
 * (its first taker died before acknowledging it) finds its invocation and waits for it
 * instead of running it again.
 */
import { createHash } from 'node:crypto';
import type { DeliveryOptions } from '../../common/delivery-spec.js';
import { FunctionNotFoundError, VersionNotFoundError } from '../../common/errors.js';
import { submitAsync, type AsyncSubmitter } from '../../common/async-submit.js';
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

export class TriggerSubmitter {
  constructor(
    private readonly registry: FunctionRegistry,
    private readonly async: AsyncSubmitter,
    private readonly finals: FinalWatcher,
    private readonly settings: SubmitSettings,
  ) {}

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
   * record. Waits while the function's queued bytes are full: the source keeps the rest.
   */
  async invoke(t: TriggerRecord, event: unknown, eventKey: string, delivery: Pick<DeliveryOptions, 'idempotencyKey' | 'source'>, stop: AbortSignal): Promise<InvocationRecord> {
    const bytes = checkEvent(event, this.settings) + JOB_OVERHEAD_BYTES;
    const id = invocationIdFor(t.uid, eventKey);
    const final = this.finals.wait(id);
    try {
      const existing = await this.async.invocations.get(id);
      if (existing && isFinal(existing)) return existing;
      if (!existing) await this.submit(t, id, event, bytes, delivery, stop);
      return await untilAborted(final, stop);
    } finally {
      this.finals.forget(id);
    }
  }

  private async submit(t: TriggerRecord, id: string, event: unknown, bytes: number, delivery: Pick<DeliveryOptions, 'idempotencyKey' | 'source'>, stop: AbortSignal): Promise<void> {
    const version = await this.versionOf(t);
    const enqueuedAt = Date.now();
    const job: InvocationJob = {
      invocationId: id,
      function: t.spec.function,
      version,
      event,
      mode: 'async',
      enqueuedAt,
      deadline: enqueuedAt + this.settings.maxEventAgeMs,
      delivery: {
        ...delivery,
        ...(t.spec.retry ? { retry: t.spec.retry } : {}),
        ...(t.spec.onSuccess ? { onSuccess: t.spec.onSuccess } : {}),
        ...(t.spec.onFailure ? { onFailure: t.spec.onFailure } : {}),
      },
    };
    // Backpressure: a full function takes no more from this trigger; 50 ms doubling to 2 s.
    for (let wait = 50; ; wait = Math.min(wait * 2, 2000)) {
      if ((await submitAsync(this.async, job, bytes, this.settings.queuedBytesPerFunction)) === 'queued') return;
      if (stop.aborted) throw new ConsumerStoppedError();
      await new Promise((r) => setTimeout(r, wait));
    }
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
