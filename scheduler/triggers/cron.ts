/**
 * A cron trigger. Every scheduler computes the same tick times (common/cron.ts), and a
 * tick fires only where `SET {tick lock} NX` succeeds, so that it fires once however many
 * schedulers run it (only the leader runs triggers; the lock covers the moments of a
 * hand-over, when two may believe they lead). The event is
 * {"trigger", "scheduledAt" (ISO), "scheduledAtMs"}.
 *
 * overlap "skip": a tick while this trigger's last run is still in flight is skipped.
 * After downtime (no scheduler ran the trigger), the ticks missed are skipped, or with
 * catchUp the latest of them runs once, at start; the last tick fired is kept in Redis.
 * Ticks while the trigger is paused are skipped.
 */
import { lastTickAtOrBefore, nextTick, parseSchedule, type Schedule } from '../../common/cron.js';
import type { CronSource } from '../../common/trigger-spec.js';
import { triggerCronKey, triggerTickKey, type TriggerRecord } from '../../common/triggers.js';
import { stopController, type Consumer, type ConsumerContext } from './consumer.js';

/** A tick's lock outlives any clock skew between schedulers worth tolerating. */
const TICK_LOCK_MS = 120_000;
/** setTimeout takes at most 2^31-1 ms; a longer wait is re-armed. */
const MAX_TIMER_MS = 3600_000;

// KEYS: 1 last tick fired. ARGV: 1 tick (ms). Only moves forward.
const LAST_TICK_SCRIPT = `local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`;

export class CronConsumer implements Consumer {
  private readonly source: CronSource;
  private readonly schedule: Schedule;
  private paused: boolean;
  private timer: NodeJS.Timeout | undefined;
  private readonly stop = stopController();
  private inFlight = 0;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly t: TriggerRecord,
    private readonly ctx: ConsumerContext,
  ) {
    this.source = t.spec.source as CronSource;
    this.schedule = parseSchedule(this.source.schedule, this.source.timezone);
    this.paused = t.paused;
  }

  async start(): Promise<void> {
    this.ctx.state.started(this.t.name);
    const now = Date.now();
    if (this.source.catchUp && !this.paused) {
      try {
        const last = await this.ctx.redis.get(triggerCronKey(this.ctx.prefix, this.t.name));
        const missed = last === null ? undefined : lastTickAtOrBefore(this.schedule, now, Number(last));
        if (missed !== undefined) this.spawn(missed);
      } catch (err) {
        this.ctx.state.error(this.t.name, `catch-up: ${(err as Error).message}`, false);
      }
    }
    this.arm(now);
  }

  private arm(after: number): void {
    if (this.stop.signal.aborted) return;
    const next = nextTick(this.schedule, after);
    if (next === undefined) return;
    const wait = next - Date.now();
    if (wait > MAX_TIMER_MS) {
      this.timer = setTimeout(() => this.arm(after), MAX_TIMER_MS);
      return;
    }
    this.timer = setTimeout(() => {
      this.arm(next);
      if (!this.paused) this.spawn(next);
    }, Math.max(0, wait));
  }

  async setPaused(paused: boolean): Promise<void> {
    this.paused = paused;
  }

  private spawn(tick: number): void {
    const p = this.fire(tick).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  private async fire(tick: number): Promise<void> {
    const { t, ctx } = this;
    if (this.source.overlap === 'skip' && this.inFlight > 0) return;
    this.inFlight++;
    try {
      const won = await ctx.redis.set(triggerTickKey(ctx.prefix, t.name, tick), '1', 'PX', TICK_LOCK_MS, 'NX');
      if (won !== 'OK') return; // another scheduler fired this tick
      await ctx.redis.eval(LAST_TICK_SCRIPT, 1, triggerCronKey(ctx.prefix, t.name), String(tick));
      ctx.state.inFlight(t.name, this.inFlight);
      ctx.state.fired(t.name, 1, tick);
      const scheduledAt = new Date(tick).toISOString();
      const rec = await ctx.submitter.invoke(t, { trigger: t.name, scheduledAt, scheduledAtMs: tick }, `cron:${tick}`, { idempotencyKey: `${t.name}@${scheduledAt}`, source: { kind: 'cron', trigger: t.name, scheduledAt: tick } }, this.stop.signal);
      ctx.state.finished(t.name, rec.status === 'succeeded');
    } catch (err) {
      if (!this.stop.signal.aborted) ctx.state.error(t.name, `tick ${new Date(tick).toISOString()}: ${(err as Error).message}`, false);
    } finally {
      this.inFlight--;
      ctx.state.inFlight(t.name, this.inFlight);
    }
  }

  async close(): Promise<void> {
    this.stop.abort();
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.running]);
  }
}
