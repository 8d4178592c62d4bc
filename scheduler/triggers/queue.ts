/**
 * A queue trigger: a BullMQ Worker on the source queue (its name, prefix and Redis), with
 * the trigger's concurrency. A job's data is the event, its id the idempotency key. The
 * processor returns only once the invocation is final, so the source job stays active (its
 * lock renewed) while faasbox works on it, and a scheduler that dies leaves it to BullMQ's
 * stalled check, which hands it to the next leader: the source keeps what faasbox has not
 * finished.
 *
 *   invocation succeeded  -> the source job completes with {invocationId, status}
 *   invocation failed     -> the source job fails (UnrecoverableError: no second round of
 *                            the producer's own attempts on top of delivery's retries);
 *                            the invocation is in the function's dead letters
 *   batch item reported failed in each attempt -> its own dead letter, and the source
 *                            job completes with {deadLetterId, invocationId, status}
 *   event not acceptable  -> to the function's dead letters with the reason, and the
 *                            source job completes with {deadLetterId, status, reason}:
 *                            the queue moves on
 *   faasbox cannot submit -> the job goes back, delayed (function missing, Redis away)
 */
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { batchingOf, type QueueSource } from '../../common/trigger-spec.js';
import type { TriggerRecord } from '../../common/triggers.js';
import { Batcher, runBatch, Slots, type BatchItem, type ItemOutcome } from './batch.js';
import { sleep, sourceConnection, stopController, type Consumer, type ConsumerContext } from './consumer.js';
import { checkEvent, EventRejectedError } from './event.js';
import { ConsumerStoppedError } from './submit.js';

/** A job that could not be submitted is tried again after this long (doubling per try, to 30 s). */
const RESUBMIT_MS = 1000;

/** An item's outcome, or `later`: not final (the trigger stopped, submitting failed), back to the source. */
type Outcome = ItemOutcome | { later: string };

interface Waiting {
  item: BatchItem;
  key: string;
  done: (o: Outcome) => void;
}

export class QueueConsumer implements Consumer {
  private readonly source: QueueSource;
  private connection: Redis | undefined;
  private worker: Worker | undefined;
  private lagQueue: Queue | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private readonly stop = stopController();
  private running = false;
  private inFlight = 0;
  private readonly batching;
  private readonly batcher: Batcher<Waiting> | undefined;
  private readonly slots: Slots;

  constructor(
    private readonly t: TriggerRecord,
    private readonly ctx: ConsumerContext,
  ) {
    this.source = t.spec.source as QueueSource;
    this.batching = batchingOf(t.spec);
    this.slots = new Slots(t.spec.concurrency);
    if (this.batching) this.batcher = new Batcher(this.batching.size, this.batching.windowMs, (items) => void this.runBatch(items));
  }

  async start(): Promise<void> {
    const { t, ctx, source } = this;
    ctx.state.started(t.name);
    this.connection = sourceConnection(source.redisUrl ?? ctx.redisUrl, t.name, ctx.state);
    // With batches, the worker holds up to `concurrency` full batches of jobs at once.
    const concurrency = t.spec.concurrency * (this.batching?.size ?? 1);
    this.worker = new Worker(source.queue, (job, token) => this.process(job, token), {
      connection: this.connection,
      prefix: source.prefix,
      concurrency,
      autorun: false,
      // A job waits on its invocation; only a dead scheduler's jobs may be taken back,
      // however often that happens.
      maxStalledCount: 1000,
    });
    this.worker.on('error', (err: Error) => ctx.state.error(t.name, `source queue ${source.queue}: ${err.message}`));
    this.lagQueue = new Queue(source.queue, { connection: this.connection, prefix: source.prefix });
    this.lagQueue.on('error', () => {}); // its connection's errors are recorded already
    this.lagTimer = setInterval(() => void this.measureLag(), ctx.lagEveryMs);
    this.lagTimer.unref();
    if (!t.paused) this.run();
  }

  private run(): void {
    if (this.running) {
      void this.worker!.resume();
      return;
    }
    this.running = true;
    this.worker!.run().catch((err: Error) => this.ctx.state.error(this.t.name, `source queue ${this.source.queue}: ${err.message}`));
  }

  async setPaused(paused: boolean): Promise<void> {
    // pause() cuts the worker's blocking fetch at once, so nothing new is taken, but
    // resolves only once the jobs in flight are final: not awaited.
    if (paused) void this.worker?.pause().catch((err: Error) => this.ctx.state.error(this.t.name, `pausing: ${err.message}`, false));
    else this.run();
  }

  private async measureLag(): Promise<void> {
    try {
      const counts = await this.lagQueue!.getJobCounts('waiting', 'delayed', 'prioritized');
      this.ctx.state.lag(this.t.name, Object.values(counts).reduce((a, b) => a + b, 0));
    } catch {
      // The source is away: its error is recorded by the connection.
    }
  }

  private track(delta: number): void {
    this.inFlight += delta;
    this.ctx.state.inFlight(this.t.name, this.inFlight);
  }

  private eventKey(job: Job): string {
    // A queue's ids restart if it is obliterated: its creation time tells two job "1"s apart.
    return `queue:${this.source.prefix}:${this.source.queue}:${job.id}:${job.timestamp}`;
  }

  private sourceOf(jobId: string) {
    return { kind: 'queue' as const, trigger: this.t.name, queue: this.source.queue, jobId };
  }

  private async process(job: Job, token?: string): Promise<unknown> {
    const { t, ctx } = this;
    const id = String(job.id);
    try {
      if (this.batcher) return await this.processInBatch(job, id, token);
      checkEvent(job.data, ctx.submitter.bounds);
      await this.slots.take();
      this.track(1);
      try {
        ctx.state.fired(t.name);
        const rec = await ctx.submitter.invoke(t, job.data, this.eventKey(job), { idempotencyKey: id, claimKey: `queue:${this.source.prefix}:${this.source.queue}:${id}`, source: this.sourceOf(id) }, this.stop.signal);
        ctx.state.finished(t.name, rec.status === 'succeeded');
        if (rec.status !== 'succeeded') throw new UnrecoverableError(`invocation ${rec.id} ${rec.status}: ${rec.error ? `${rec.error.code}: ${rec.error.message}` : ''}`);
        return { invocationId: rec.id, status: rec.status };
      } finally {
        this.track(-1);
        this.slots.give();
      }
    } catch (err) {
      if (err instanceof UnrecoverableError || err instanceof DelayedError) throw err;
      let failure = err as Error;
      if (err instanceof EventRejectedError) {
        // Acknowledged (completed) once its dead letter is written: the queue moves on.
        try {
          const deadLetterId = await ctx.submitter.reject(t, job.data, this.eventKey(job), this.sourceOf(id), err.message);
          ctx.state.rejected(t.name, `job ${id}: ${err.message}`);
          return { deadLetterId, status: 'dead-lettered', reason: err.message };
        } catch (writing) {
          failure = new Error(`dead-lettering a rejected event (${err.message}): ${(writing as Error).message}`);
        }
      }
      if (err instanceof ConsumerStoppedError) throw err; // the job stays active: BullMQ's stalled check returns it
      ctx.state.error(t.name, `job ${id}: ${failure.message}`, false);
      const wait = Math.min(RESUBMIT_MS * 2 ** Math.min(job.attemptsStarted, 5), 30_000);
      await job.moveToDelayed(Date.now() + wait, token);
      throw new DelayedError();
    }
  }

  private async processInBatch(job: Job, id: string, token: string | undefined): Promise<unknown> {
    const event = { id, data: job.data };
    const bytes = checkEvent(event, this.ctx.submitter.bounds);
    const o = await new Promise<Outcome>((done) => this.batcher!.add({ item: { id, event, bytes }, key: this.eventKey(job), done }));
    if ('later' in o) {
      this.ctx.state.error(this.t.name, `job ${id}: ${o.later}`, false);
      await job.moveToDelayed(Date.now() + RESUBMIT_MS, token);
      throw new DelayedError();
    }
    if (o.ok) return { invocationId: o.invocationId, status: 'succeeded' };
    if (!o.reported) throw new UnrecoverableError(o.reason); // as a single job's failed invocation
    // The batch invocation succeeded but named this item failed in each attempt: nothing
    // else dead-letters it, so the trigger does, and the job completes pointing there.
    const deadLetterId = await this.ctx.submitter.itemFailed(this.t, event, this.eventKey(job), this.sourceOf(id), o);
    return { deadLetterId, invocationId: o.invocationId, status: 'dead-lettered', reason: o.reason };
  }

  private async runBatch(batch: Waiting[]): Promise<void> {
    const { t, ctx } = this;
    await this.slots.take();
    this.track(batch.length);
    const keyOf = new Map(batch.map((w) => [w.item.id, w.key]));
    try {
      const outcomes = await runBatch(
        batch.map((w) => w.item),
        (items, attempt) => {
          ctx.state.fired(t.name, items.length);
          const key = `batch:${attempt}:${items.map((i) => keyOf.get(i.id)).join(',')}`;
          const firstId = items[0]!.id;
          return ctx.submitter.invoke(t, items.map((i) => i.event), key, { idempotencyKey: `${firstId}+${items.length - 1}`, source: { kind: 'queue', trigger: t.name, queue: this.source.queue, jobId: firstId } }, this.stop.signal);
        },
        t.spec.retry,
        (ms) => sleep(ms, this.stop.signal),
        ctx.submitter.bounds.maxEventBytes,
      );
      for (const w of batch) {
        const o = outcomes.get(w.item.id);
        if (o) ctx.state.finished(t.name, o.ok);
        w.done(o ?? { later: 'the trigger stopped' });
      }
    } catch (err) {
      // Not final (the trigger stopped, or submitting failed): the jobs go back to the source.
      for (const w of batch) w.done({ later: (err as Error).message });
    } finally {
      this.track(-batch.length);
      this.slots.give();
    }
  }

  async close(): Promise<void> {
    this.stop.abort();
    if (this.lagTimer) clearInterval(this.lagTimer);
    this.batcher?.flushNow();
    await this.worker?.close(true).catch(() => {});
    await this.lagQueue?.close().catch(() => {});
    this.connection?.disconnect();
  }
}
