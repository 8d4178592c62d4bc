/**
 * Batches of a queue or stream trigger, and their partial failures as Lambda's
 * ReportBatchItemFailures: the function may answer
 * `{"batchItemFailures":[{"itemIdentifier":ID}]}`, and only those items are invoked again
 * (as a smaller batch, after the trigger's backoff), up to retry.maxAttempts in all; the
 * others are done. An identifier that names no item of the batch fails the whole batch, as
 * Lambda does: a typo must not acknowledge events that did not run. A batch whose
 * invocation failed outright has had its retries in delivery already: its items fail.
 */
import { DELIVERY_LIMITS, type Backoff, type RetrySettings } from '../../common/delivery-spec.js';
import type { InvocationRecord } from '../../common/invocations.js';

export interface BatchItem {
  /** The source's id (job id, entry id): the `itemIdentifier` the function names. */
  id: string;
  event: unknown;
  /** Its event's JSON size, to keep each invocation's array within the event bound. */
  bytes?: number;
}

/**
 * A failed item: `reported` when the function named it in batchItemFailures in each
 * attempt (its batch invocation succeeded, so nothing else dead-lettered it: the trigger
 * must), else its batch's invocation failed outright and is in the dead letters already.
 */
export type ItemOutcome = { ok: true; invocationId: string } | { ok: false; invocationId: string; reason: string; attempts: number; reported: boolean };

const DEFAULT_BACKOFF: Backoff = { type: 'exponential', delayMs: DELIVERY_LIMITS.delayMs.default, jitter: true };

/** The delay before attempt `attempt + 1`: exponential doubles per attempt; jitter draws from [delay/2, delay]. */
export function backoffDelayMs(backoff: Backoff, attempt: number, random: () => number = Math.random): number {
  const base = backoff.type === 'fixed' ? backoff.delayMs : backoff.delayMs * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(base, DELIVERY_LIMITS.delayMs.max);
  return backoff.jitter ? Math.round(capped / 2 + random() * (capped / 2)) : capped;
}

/**
 * The ids the function reported failed: undefined for none (the whole batch succeeded),
 * 'all' when the report names an item the batch does not have or is malformed.
 */
export function failedItemIds(result: unknown, ids: ReadonlySet<string>): Set<string> | 'all' | undefined {
  if (result === null || typeof result !== 'object' || !('batchItemFailures' in result)) return undefined;
  const list = (result as { batchItemFailures: unknown }).batchItemFailures;
  if (!Array.isArray(list)) return 'all';
  if (list.length === 0) return undefined;
  const out = new Set<string>();
  for (const f of list) {
    const id = (f as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== 'string' || !ids.has(id)) return 'all';
    out.add(id);
  }
  return out;
}

/**
 * Splits items, in order, into arrays whose JSON stays within maxBytes (an item over it
 * alone goes alone: it was checked against the bound by itself).
 */
export function chunksByBytes(items: readonly BatchItem[], maxBytes: number): BatchItem[][] {
  const out: BatchItem[][] = [];
  let chunk: BatchItem[] = [];
  let size = 2; // the brackets
  for (const item of items) {
    const b = (item.bytes ?? 0) + 1; // and a comma
    if (chunk.length > 0 && size + b > maxBytes) {
      out.push(chunk);
      chunk = [];
      size = 2;
    }
    chunk.push(item);
    size += b;
  }
  if (chunk.length) out.push(chunk);
  return out;
}

/**
 * Runs a batch to its end: `invoke(items, attempt)` gives an attempt's final record; a
 * batch whose array would pass maxBytes goes as several invocations. Resolves with every
 * item's outcome.
 */
export async function runBatch(
  items: readonly BatchItem[],
  invoke: (items: readonly BatchItem[], attempt: number) => Promise<InvocationRecord>,
  retry: RetrySettings | undefined,
  sleep: (ms: number) => Promise<void>,
  maxBytes = Infinity,
): Promise<Map<string, ItemOutcome>> {
  const maxAttempts = retry?.maxAttempts ?? DELIVERY_LIMITS.maxAttempts.default;
  const backoff = retry?.backoff ?? DEFAULT_BACKOFF;
  const out = new Map<string, ItemOutcome>();
  let pending = [...items];
  for (let attempt = 1; pending.length > 0; attempt++) {
    const again: { item: BatchItem; invocationId: string }[] = [];
    for (const chunk of chunksByBytes(pending, maxBytes)) {
      const rec = await invoke(chunk, attempt);
      if (rec.status !== 'succeeded') {
        const reason = `invocation ${rec.id} ${rec.status}: ${rec.error ? `${rec.error.code}: ${rec.error.message}` : 'no error recorded'}`;
        for (const item of chunk) out.set(item.id, { ok: false, invocationId: rec.id, reason, attempts: rec.attempts, reported: false });
        continue;
      }
      const failed = failedItemIds(rec.result, new Set(chunk.map((i) => i.id)));
      const failedSet = failed === 'all' ? new Set(chunk.map((i) => i.id)) : (failed ?? new Set<string>());
      for (const item of chunk) {
        if (failedSet.has(item.id)) again.push({ item, invocationId: rec.id });
        else out.set(item.id, { ok: true, invocationId: rec.id });
      }
    }
    if (again.length === 0) break;
    if (attempt >= maxAttempts) {
      for (const { item, invocationId } of again) out.set(item.id, { ok: false, invocationId, reason: `the function reported item ${item.id} failed in each of ${attempt} attempts`, attempts: attempt, reported: true });
      break;
    }
    pending = again.map((a) => a.item);
    await sleep(backoffDelayMs(backoff, attempt));
  }
  return out;
}

/** At most `size` holders at once; the rest wait in order. */
export class Slots {
  private used = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly size: number) {}

  get inUse(): number {
    return this.used;
  }

  get free(): number {
    return this.size - this.used;
  }

  async take(): Promise<void> {
    if (this.used < this.size) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  give(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.used--;
  }
}

/**
 * Collects items into batches: one goes when it is full, or `windowMs` after its first
 * item (0: at the next turn of the event loop, with what arrived meanwhile).
 */
export class Batcher<T> {
  private items: T[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly size: number,
    private readonly windowMs: number,
    private readonly flush: (items: T[]) => void,
  ) {}

  add(item: T): void {
    this.items.push(item);
    if (this.items.length >= this.size) this.flushNow();
    else this.timer ??= setTimeout(() => this.flushNow(), this.windowMs);
  }

  flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const items = this.items;
    this.items = [];
    if (items.length) this.flush(items);
  }
}
