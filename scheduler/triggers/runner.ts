/**
 * The trigger runner: one consumer per trigger, kept in line with the store. A change
 * (PUT, pause, resume, DELETE) arrives on the store's events channel and is applied at
 * once; the store is also re-read every `pollMs`, the bound when a message is missed (a
 * reconnect). A consumer whose trigger's generation moved is stopped and started anew; a
 * pause or resume is passed to the running one.
 *
 * A consumer that fails to start (a bad source URL) is recorded in the trigger's state and
 * tried again at the next reconciliation, never taking the scheduler down.
 */
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { DeadLetters } from '../../common/delivery/dead-letters.js';
import { IdempotencyKeys } from '../../common/delivery/idempotency.js';
import { InvocationClient } from '../../common/invocation-client.js';
import { InvocationStore } from '../../common/invocations.js';
import { QueuedBytes } from '../../common/queued-bytes.js';
import { FunctionRegistry } from '../../common/registry.js';
import { TriggerStore, type TriggerRecord } from '../../common/triggers.js';
import type { Consumer, ConsumerContext } from './consumer.js';
import { CronConsumer } from './cron.js';
import { FinalWatcher } from './finals.js';
import { QueueConsumer } from './queue.js';
import { TriggerMetrics, TriggerStateWriter } from './state.js';
import { StreamConsumer } from './stream.js';
import { TriggerSubmitter, type SubmitSettings } from './submit.js';

export interface RunnerConfig extends SubmitSettings {
  redisUrl: string;
  prefix: string;
  /** Dead letters kept per function (StorageLimits.deadLettersPerFunction). */
  deadLettersPerFunction?: number;
  /** Records' TTL, as the gateway's (recordTtlSeconds). */
  recordTtlSeconds?: number;
  pollMs?: number;
  lagEveryMs?: number;
  metrics?: Registry;
}

function consumerFor(t: TriggerRecord, ctx: ConsumerContext): Consumer {
  switch (t.spec.source.kind) {
    case 'queue':
      return new QueueConsumer(t, ctx);
    case 'stream':
      return new StreamConsumer(t, ctx);
    case 'cron':
      return new CronConsumer(t, ctx);
  }
}

interface Running {
  generation: string;
  paused: boolean;
  consumer: Consumer;
}

export class TriggerRunner {
  private readonly running = new Map<string, Running>();
  private sub: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private again = false;
  private closed = false;

  private constructor(
    private readonly store: TriggerStore,
    private readonly ctx: ConsumerContext,
    private readonly finals: FinalWatcher,
    private readonly client: InvocationClient,
  ) {}

  static async start(redis: Redis, cfg: RunnerConfig): Promise<TriggerRunner> {
    const invocations = new InvocationStore(redis, cfg.prefix, cfg.recordTtlSeconds);
    const finals = new FinalWatcher(redis, cfg.prefix, invocations);
    await finals.start();
    const client = await InvocationClient.open({ connection: redis, prefix: cfg.prefix, placement: false });
    const submitter = new TriggerSubmitter(
      new FunctionRegistry(redis, cfg.prefix),
      { invocations, queue: client, queued: new QueuedBytes(redis, cfg.prefix), idempotency: new IdempotencyKeys(redis, cfg.prefix) },
      new DeadLetters(redis, cfg.prefix, cfg.deadLettersPerFunction),
      finals,
      cfg,
    );
    const state = new TriggerStateWriter(redis, cfg.prefix, new TriggerMetrics(cfg.metrics));
    const ctx: ConsumerContext = { redisUrl: cfg.redisUrl, prefix: cfg.prefix, redis, submitter, state, lagEveryMs: cfg.lagEveryMs ?? 1000 };
    const runner = new TriggerRunner(new TriggerStore(redis, cfg.prefix), ctx, finals, client);
    runner.sub = redis.duplicate();
    runner.sub.on('error', () => {}); // reconnects by itself; the poll covers the gap
    await runner.sub.subscribe(runner.store.eventsChannel);
    runner.sub.on('message', () => runner.reconcile());
    runner.timer = setInterval(() => runner.reconcile(), cfg.pollMs ?? 2000);
    runner.timer.unref();
    runner.reconcile();
    await runner.reconciling;
    return runner;
  }

  /** Triggers with a consumer now (tests). */
  get names(): string[] {
    return [...this.running.keys()];
  }

  /** Brings consumers in line with the store; a call while one runs makes it run once more. */
  reconcile(): void {
    if (this.closed) return;
    if (this.reconciling) {
      this.again = true;
      return;
    }
    this.reconciling = this.apply()
      .catch((err: Error) => console.error(`[faasbox] scheduler: reading triggers: ${err.message}`))
      .finally(() => {
        this.reconciling = undefined;
        if (this.again) {
          this.again = false;
          this.reconcile();
        }
      });
  }

  private async apply(): Promise<void> {
    const wanted = new Map((await this.store.list()).map((t) => [t.name, t]));
    for (const [name, r] of this.running) {
      const t = wanted.get(name);
      if (t && t.generation === r.generation) continue;
      this.running.delete(name);
      await r.consumer.close();
      if (!t) this.ctx.state.forget(name);
    }
    for (const [name, t] of wanted) {
      if (this.closed) return;
      const r = this.running.get(name);
      if (r) {
        if (r.paused !== t.paused) {
          r.paused = t.paused;
          await r.consumer.setPaused(t.paused);
        }
        continue;
      }
      const consumer = consumerFor(t, this.ctx);
      try {
        await consumer.start();
        this.running.set(name, { generation: t.generation, paused: t.paused, consumer });
      } catch (err) {
        this.ctx.state.error(name, `starting: ${(err as Error).message}`);
        await consumer.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.reconciling;
    this.sub?.disconnect();
    await Promise.allSettled([...this.running.values()].map((r) => r.consumer.close()));
    this.running.clear();
    await this.ctx.state.close();
    await this.finals.close();
    await this.client.close();
  }
}
