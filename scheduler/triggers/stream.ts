/**
 * A stream trigger: a Redis Stream read with a consumer group (created at the stream's
 * start if missing, with the stream itself: no entry written before the trigger's first
 * read is missed; an existing group keeps its position). Each scheduler process reads
 * under a consumer name of its own; an entry is XACKed only once its invocation is final,
 * so the entries of a consumer that died stay pending, and XAUTOCLAIM hands them to the
 * live one after `reclaimIdleMs` idle. An entry whose submission failed (the function
 * missing, Redis away) also stays pending, and is taken again the same way.
 *
 * The event of an entry is {id, fields}; with batching, an array of those.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { batchingOf, type StreamSource } from '../../common/trigger-spec.js';
import type { TriggerRecord } from '../../common/triggers.js';
import { runBatch, Slots, type BatchItem } from './batch.js';
import { sleep, sourceConnection, stopController, type Consumer, type ConsumerContext } from './consumer.js';
import { checkEvent, EventRejectedError } from './event.js';
import { ConsumerStoppedError } from './submit.js';

type RawEntry = [id: string, fields: string[] | null];

const BLOCK_MS = 1000;

function fieldsOf(raw: string[] | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; raw && i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}

export class StreamConsumer implements Consumer {
  private readonly source: StreamSource;
  private reader: Redis | undefined;
  private cmd: Redis | undefined;
  private readonly stop = stopController();
  private paused: boolean;
  private readonly slots: Slots;
  private readonly batching;
  /** Entries this process is working on: XAUTOCLAIM must not hand them to it a second time. */
  private readonly inProgress = new Set<string>();
  private loop: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private lastReclaim = 0;
  readonly consumerName = `faasbox-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;

  constructor(
    private readonly t: TriggerRecord,
    private readonly ctx: ConsumerContext,
  ) {
    this.source = t.spec.source as StreamSource;
    this.paused = t.paused;
    this.slots = new Slots(t.spec.concurrency);
    this.batching = batchingOf(t.spec);
  }

  async start(): Promise<void> {
    const url = this.source.redisUrl ?? this.ctx.redisUrl;
    this.ctx.state.started(this.t.name);
    this.cmd = sourceConnection(url, this.t.name, this.ctx.state);
    this.reader = sourceConnection(url, this.t.name, this.ctx.state);
    this.lagTimer = setInterval(() => void this.measureLag(), this.ctx.lagEveryMs);
    this.lagTimer.unref();
    this.loop = this.run();
  }

  async setPaused(paused: boolean): Promise<void> {
    this.paused = paused;
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.cmd!.xgroup('CREATE', this.source.stream, this.source.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  private async run(): Promise<void> {
    const signal = this.stop.signal;
    let wait = 100;
    let grouped = false;
    while (!signal.aborted) {
      try {
        if (!grouped) {
          await this.ensureGroup();
          grouped = true;
        }
        if (this.paused) {
          await sleep(100, signal);
          continue;
        }
        await this.slots.take();
        let entries: RawEntry[];
        try {
          entries = await this.next();
        } catch (err) {
          this.slots.give();
          throw err;
        }
        if (entries.length === 0) {
          this.slots.give();
          continue;
        }
        if (this.batching) void this.handleBatch(entries);
        else {
          void this.handleOne(entries[0]!);
          for (const e of entries.slice(1)) {
            await this.slots.take();
            void this.handleOne(e);
          }
        }
        wait = 100;
      } catch (err) {
        if (signal.aborted) break;
        const message = (err as Error).message;
        // The stream or its group was deleted under us: made again, from the start.
        if (/NOGROUP/.test(message)) grouped = false;
        this.ctx.state.error(this.t.name, `stream ${this.source.stream}: ${message}`);
        await sleep(wait, signal);
        wait = Math.min(wait * 2, 5000);
      }
    }
  }

  /** Entries to work on: a dead consumer's, once they are idle long enough, else new ones. */
  private async next(): Promise<RawEntry[]> {
    const { stream, group, reclaimIdleMs } = this.source;
    const size = this.batching?.size ?? Math.max(1, this.slots.free + 1);
    if (Date.now() - this.lastReclaim > Math.min(reclaimIdleMs / 2, 5000)) {
      this.lastReclaim = Date.now();
      const [, claimed, deleted] = (await this.cmd!.xautoclaim(stream, group, this.consumerName, reclaimIdleMs, '0-0', 'COUNT', size)) as [string, RawEntry[], string[]?];
      // Entries deleted from the stream while pending: nothing left to run.
      if (deleted?.length) await this.cmd!.xack(stream, group, ...deleted);
      const fresh = claimed.filter(([id, fields]) => fields !== null && !this.inProgress.has(id));
      if (fresh.length) return this.mark(fresh);
    }
    const first = await this.read(size, BLOCK_MS);
    if (!this.batching || first.length === 0 || first.length >= size || this.batching.windowMs === 0) return this.mark(first);
    const until = Date.now() + this.batching.windowMs;
    const all = [...first];
    while (all.length < size && Date.now() < until && !this.stop.signal.aborted) all.push(...(await this.read(size - all.length, Math.max(1, until - Date.now()))));
    return this.mark(all);
  }

  private mark(entries: RawEntry[]): RawEntry[] {
    for (const [id] of entries) this.inProgress.add(id);
    return entries;
  }

  private async read(count: number, blockMs: number): Promise<RawEntry[]> {
    const reply = (await this.reader!.xreadgroup('GROUP', this.source.group, this.consumerName, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.source.stream, '>')) as [string, RawEntry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  private eventKey(id: string): string {
    return `stream:${this.source.stream}:${this.source.group}:${id}`;
  }

  private async ack(ids: string[]): Promise<void> {
    await this.cmd!.xack(this.source.stream, this.source.group, ...ids);
  }

  private async handleOne([id, raw]: RawEntry): Promise<void> {
    const { t, ctx } = this;
    ctx.state.inFlight(t.name, this.inProgress.size);
    try {
      const event = { id, fields: fieldsOf(raw) };
      try {
        checkEvent(event, ctx.submitter.bounds);
      } catch (err) {
        if (err instanceof EventRejectedError) return await this.rejected(id, event, err);
        throw err;
      }
      ctx.state.fired(t.name);
      const rec = await ctx.submitter.invoke(t, event, this.eventKey(id), { idempotencyKey: id, source: { kind: 'stream', trigger: t.name, stream: this.source.stream, entryId: id } }, this.stop.signal);
      ctx.state.finished(t.name, rec.status === 'succeeded');
      // Final: succeeded, or dead-lettered by its delivery: either way done with the entry.
      await this.ack([id]);
    } catch (err) {
      this.failed([id], err);
    } finally {
      this.inProgress.delete(id);
      ctx.state.inFlight(t.name, this.inProgress.size);
      this.slots.give();
    }
  }

  private failed(ids: string[], err: unknown): void {
    if (err instanceof ConsumerStoppedError) return; // pending: the next leader reclaims it
    // Left pending: XAUTOCLAIM takes it again after reclaimIdleMs.
    this.ctx.state.error(this.t.name, `entry ${ids.join(',')}: ${(err as Error).message}`, false);
  }

  /**
   * An entry the function cannot be given: to its dead letters with the reason, then
   * acknowledged. If the dead letter cannot be written it stays pending, reclaimed later.
   */
  private async rejected(id: string, event: unknown, err: EventRejectedError): Promise<void> {
    try {
      await this.ctx.submitter.reject(this.t, event, this.eventKey(id), { kind: 'stream', trigger: this.t.name, stream: this.source.stream, entryId: id }, err.message);
      this.ctx.state.rejected(this.t.name, `entry ${id}: ${err.message}`);
      await this.ack([id]);
    } catch (writing) {
      this.ctx.state.error(this.t.name, `entry ${id}: dead-lettering a rejected event (${err.message}): ${(writing as Error).message}`, false);
    }
  }

  private async handleBatch(entries: RawEntry[]): Promise<void> {
    const { t, ctx } = this;
    ctx.state.inFlight(t.name, this.inProgress.size);
    const ids = entries.map(([id]) => id);
    try {
      const items: BatchItem[] = [];
      for (const [id, raw] of entries) {
        const event = { id, fields: fieldsOf(raw) };
        try {
          items.push({ id, event, bytes: checkEvent(event, ctx.submitter.bounds) });
        } catch (err) {
          if (err instanceof EventRejectedError) await this.rejected(id, event, err);
          else this.failed([id], err);
        }
      }
      if (items.length === 0) return;
      const outcomes = await runBatch(
        items,
        (batch, attempt) => {
          ctx.state.fired(t.name, batch.length);
          const key = `batch:${attempt}:${batch.map((i) => this.eventKey(i.id)).join(',')}`;
          return ctx.submitter.invoke(t, batch.map((i) => i.event), key, { idempotencyKey: `${batch[0]!.id}+${batch.length - 1}`, source: { kind: 'stream', trigger: t.name, stream: this.source.stream, entryId: batch[0]!.id } }, this.stop.signal);
        },
        t.spec.retry,
        (ms) => sleep(ms, this.stop.signal),
        ctx.submitter.bounds.maxEventBytes,
      );
      for (const o of outcomes.values()) ctx.state.finished(t.name, o.ok);
      // Items the function reported failed in each attempt get their own dead letter before
      // their entry is acknowledged (one that cannot be written stays pending, reclaimed
      // later); a batch that failed outright is in the dead letters as its invocation.
      const done: string[] = [];
      for (const [id, o] of outcomes) {
        if (!o.ok && o.reported) {
          const item = items.find((i) => i.id === id)!;
          try {
            await ctx.submitter.itemFailed(t, item.event, this.eventKey(id), { kind: 'stream', trigger: t.name, stream: this.source.stream, entryId: id }, o);
          } catch (err) {
            this.failed([id], err);
            continue;
          }
        }
        done.push(id);
      }
      if (done.length) await this.ack(done);
    } catch (err) {
      this.failed(ids, err);
    } finally {
      for (const id of ids) this.inProgress.delete(id);
      ctx.state.inFlight(t.name, this.inProgress.size);
      this.slots.give();
    }
  }

  private async measureLag(): Promise<void> {
    try {
      const groups = (await this.cmd!.xinfo('GROUPS', this.source.stream)) as unknown[][];
      for (const g of groups) {
        const info: Record<string, unknown> = {};
        for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1];
        if (info.name === this.source.group && typeof info.lag === 'number') this.ctx.state.lag(this.t.name, info.lag);
      }
    } catch {
      // Not there yet, or the source is away (recorded by the connection).
    }
  }

  async close(): Promise<void> {
    this.stop.abort();
    if (this.lagTimer) clearInterval(this.lagTimer);
    // The blocking read would hold close() for up to BLOCK_MS.
    this.reader?.disconnect();
    await this.loop?.catch(() => {});
    this.cmd?.disconnect();
  }
}
