/**
 * Trigger state, as GET /v1/triggers/:name shows it (common/triggers.ts: TriggerState),
 * and the same as Prometheus series labelled by trigger. Counts are gathered in memory
 * and written every FLUSH_MS in one pipeline: five writes per event on the hot path
 * would cost more than the event's own job.
 */
import type { Redis } from 'ioredis';
import { Counter, Gauge, Registry } from 'prom-client';
import { triggerStateKey } from '../../common/triggers.js';

const FLUSH_MS = 250;

export class TriggerMetrics {
  readonly inFlight: Gauge;
  readonly lag: Gauge;
  readonly events: Counter;
  readonly errors: Counter;
  readonly lastFire: Gauge;
  readonly sourceUp: Gauge;

  constructor(registry: Registry = new Registry()) {
    const registers = [registry];
    const labelNames = ['trigger'] as const;
    // A scheduler that loses the lease and takes it again starts a new runner on the same
    // registry: its series are found, not registered twice (prom-client throws).
    const gauge = (name: string, help: string) => (registry.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, labelNames, registers });
    const counter = (name: string, help: string, labels: readonly string[] = labelNames) => (registry.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, labelNames: labels, registers });
    this.inFlight = gauge('faasbox_trigger_in_flight', 'Invocations a trigger submitted that are not final yet');
    this.lag = gauge('faasbox_trigger_lag', 'Events waiting in the trigger\'s source (queue: waiting + delayed jobs; stream: the group\'s lag)');
    this.events = counter('faasbox_trigger_events_total', 'Events a trigger took, by outcome (succeeded, failed, rejected)', ['trigger', 'outcome']);
    this.errors = counter('faasbox_trigger_errors_total', 'Errors of a trigger\'s source or submission (the source unreachable, the function missing)');
    this.lastFire = gauge('faasbox_trigger_last_fire_timestamp_seconds', 'When the trigger last submitted an invocation');
    this.sourceUp = gauge('faasbox_trigger_source_up', '1 while the trigger\'s source answers, 0 while it is unreachable');
  }

  forget(trigger: string): void {
    for (const m of [this.inFlight, this.lag, this.errors, this.lastFire, this.sourceUp]) m.remove({ trigger });
    for (const outcome of ['succeeded', 'failed', 'rejected']) this.events.remove({ trigger, outcome });
  }
}

interface Pending {
  incr: Record<string, number>;
  set: Record<string, string>;
}

export class TriggerStateWriter {
  private readonly pending = new Map<string, Pending>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly metrics: TriggerMetrics,
  ) {
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  private of(name: string): Pending {
    let p = this.pending.get(name);
    if (!p) this.pending.set(name, (p = { incr: {}, set: {} }));
    return p;
  }

  private incr(name: string, field: string, n = 1): void {
    const p = this.of(name);
    p.incr[field] = (p.incr[field] ?? 0) + n;
  }

  /** A consumer (re)started: nothing of this trigger is in flight any more. */
  started(name: string): void {
    this.of(name).set.inFlight = '0';
    this.metrics.inFlight.set({ trigger: name }, 0);
  }

  inFlight(name: string, n: number): void {
    this.of(name).set.inFlight = String(n);
    this.metrics.inFlight.set({ trigger: name }, n);
  }

  fired(name: string, n = 1, scheduledAt?: number): void {
    const now = Date.now();
    this.incr(name, 'fired', n);
    const p = this.of(name);
    p.set.lastFireAt = new Date(now).toISOString();
    if (scheduledAt !== undefined) p.set.lastScheduledAt = new Date(scheduledAt).toISOString();
    this.metrics.lastFire.set({ trigger: name }, now / 1000);
  }

  finished(name: string, ok: boolean, n = 1): void {
    this.incr(name, ok ? 'succeeded' : 'failed', n);
    this.metrics.events.inc({ trigger: name, outcome: ok ? 'succeeded' : 'failed' }, n);
  }

  rejected(name: string, reason: string): void {
    this.incr(name, 'rejected');
    this.metrics.events.inc({ trigger: name, outcome: 'rejected' });
    this.error(name, reason, false);
  }

  /** Records the error and its time; `source` false: the source itself still answers. */
  error(name: string, message: string, source = true): void {
    const p = this.of(name);
    p.set.lastError = message;
    p.set.lastErrorAt = new Date().toISOString();
    if (source) {
      p.set.connected = '0';
      this.metrics.sourceUp.set({ trigger: name }, 0);
    }
    this.metrics.errors.inc({ trigger: name });
  }

  connected(name: string): void {
    this.of(name).set.connected = '1';
    this.metrics.sourceUp.set({ trigger: name }, 1);
  }

  lag(name: string, n: number): void {
    const p = this.of(name);
    p.set.lag = String(n);
    p.set.lagAt = new Date().toISOString();
    this.metrics.lag.set({ trigger: name }, n);
  }

  forget(name: string): void {
    this.pending.delete(name);
    this.metrics.forget(name);
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = [...this.pending];
    this.pending.clear();
    const pipe = this.redis.pipeline();
    for (const [name, p] of batch) {
      const key = triggerStateKey(this.prefix, name);
      for (const [f, n] of Object.entries(p.incr)) pipe.hincrby(key, f, n);
      if (Object.keys(p.set).length) pipe.hset(key, p.set);
    }
    try {
      await pipe.exec();
    } catch {
      // Our Redis is away: the counts of this flush are lost, the next ones are written.
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
