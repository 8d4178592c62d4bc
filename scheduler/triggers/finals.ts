/**
 * Waits for invocations to become final, so that a trigger acknowledges its source (a
 * queue job completed, a stream entry XACKed) only once faasbox is done with the event.
 *
 * A worker writes the final record before it completes the job (common/queue.ts, rule 4),
 * so the job's 'completed'/'failed' event on the shared queue is the moment to look; one
 * QueueEvents reader serves every trigger. A sweep re-reads every waiting record every
 * SWEEP_MS as well: an event lost in a Redis reconnect, or a record made final without
 * its job completing (an invocation dead-lettered by a retry policy), is still found.
 */
import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { isFinal as isFinalStatus, type InvocationRecord, type InvocationStore } from '../../common/invocations.js';
import { INVOCATION_QUEUE } from '../../common/queue.js';

const SWEEP_MS = 500;

/** Whether the record is the invocation's last word (retries per its `delivery` are done). */
export function isFinal(rec: InvocationRecord): boolean {
  // succeeded, failed (a failure that is not retried) or dead-lettered: never retrying.
  return isFinalStatus(rec.status);
}

export class FinalWatcher {
  private readonly waiting = new Map<string, { resolve: (r: InvocationRecord) => void; promise: Promise<InvocationRecord> }>();
  private events: QueueEvents | undefined;
  private eventsConnection: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly invocations: InvocationStore,
  ) {}

  async start(): Promise<void> {
    this.eventsConnection = this.connection.duplicate({ maxRetriesPerRequest: null, enableAutoPipelining: false });
    this.events = new QueueEvents(INVOCATION_QUEUE, { connection: this.eventsConnection, prefix: this.prefix });
    this.events.on('completed', ({ jobId }) => void this.check(jobId));
    this.events.on('failed', ({ jobId }) => void this.check(jobId));
    this.events.on('error', (err) => {
      if (!this.closed) console.error(`[faasbox] scheduler: invocation events reader: ${err.message}`);
    });
    await this.events.waitUntilReady();
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  /** The final record of the invocation; call before it is submitted, so that no event is missed. */
  wait(id: string): Promise<InvocationRecord> {
    let w = this.waiting.get(id);
    if (!w) {
      let resolve!: (r: InvocationRecord) => void;
      const promise = new Promise<InvocationRecord>((r) => (resolve = r));
      w = { resolve, promise };
      this.waiting.set(id, w);
    }
    return w.promise;
  }

  /** Stops waiting for an invocation (its trigger stopped); its promise never settles. */
  forget(id: string): void {
    this.waiting.delete(id);
  }

  get pending(): number {
    return this.waiting.size;
  }

  private async check(id: string): Promise<void> {
    if (!this.waiting.has(id)) return;
    try {
      const rec = await this.invocations.get(id);
      if (rec && isFinal(rec)) {
        const w = this.waiting.get(id);
        this.waiting.delete(id);
        w?.resolve(rec);
      }
    } catch {
      // Redis is away: the next sweep looks again.
    }
  }

  private async sweep(): Promise<void> {
    await Promise.all([...this.waiting.keys()].map((id) => this.check(id)));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.events?.close();
    this.eventsConnection?.disconnect();
  }
}
