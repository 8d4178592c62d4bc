/**
 * The trigger store: what PUT /v1/triggers/:name keeps, and the state the scheduler's
 * runner reports back for GET. Every change is announced on the events channel, so that
 * the runner picks it up at once (it also re-reads the store every few seconds, the bound
 * when a message is missed).
 *
 * Keys, under the deployment prefix:
 *   {p}:triggers                  HASH    name -> TriggerRecord (JSON)
 *   {p}:trigger:{name}:state      HASH    the runner's view: lag, inFlight, lastError, ...
 *   {p}:trigger:{name}:cron       STRING  the last tick fired (epoch ms), for catch-up
 *   {p}:trigger:{name}:tick:{ms}  STRING  the lock that makes a tick fire once (expires)
 *   {p}:trigger-events            pub/sub the names of triggers that changed
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { TriggerNotFoundError } from './errors.js';
import type { TriggerSpec } from './trigger-spec.js';

export function triggersKey(prefix: string): string {
  return `${prefix}:triggers`;
}
export function triggerStateKey(prefix: string, name: string): string {
  return `${prefix}:trigger:${name}:state`;
}
export function triggerCronKey(prefix: string, name: string): string {
  return `${prefix}:trigger:${name}:cron`;
}
export function triggerTickKey(prefix: string, name: string, tickMs: number): string {
  return `${prefix}:trigger:${name}:tick:${tickMs}`;
}
export function triggerEventsChannel(prefix: string): string {
  return `${prefix}:trigger-events`;
}

export interface TriggerRecord {
  name: string;
  spec: TriggerSpec;
  paused: boolean;
  createdAt: string;
  updatedAt: string;
  /** Fixed at creation: invocation ids derive from it, so a trigger made again under the same name does not dedupe against the old one's. */
  uid: string;
  /** New on every change: the runner restarts a consumer whose generation moved. */
  generation: string;
}

/** What the runner reports; absent fields have not happened yet. */
export interface TriggerState {
  /** Events waiting in the source (queue: waiting + delayed jobs; stream: the group's lag). */
  lag?: number;
  lagAt?: string;
  /** Invocations submitted and not yet final. */
  inFlight: number;
  /** Events taken from the source and invoked. */
  fired: number;
  succeeded: number;
  failed: number;
  /** Events refused before any invocation (too large, not JSON): their reason is lastError. */
  rejected: number;
  lastFireAt?: string;
  /** The scheduled time of the last cron tick fired. */
  lastScheduledAt?: string;
  lastError?: { message: string; at: string };
  /** Whether the source answers now (false while its Redis is unreachable). */
  connected?: boolean;
}

const COUNTERS = ['inFlight', 'fired', 'succeeded', 'failed', 'rejected'] as const;

export function parseTriggerState(h: Record<string, string>): TriggerState {
  const s: TriggerState = { inFlight: 0, fired: 0, succeeded: 0, failed: 0, rejected: 0 };
  for (const c of COUNTERS) if (h[c] !== undefined) s[c] = Math.max(0, Number(h[c]));
  if (h.lag !== undefined) s.lag = Number(h.lag);
  if (h.lagAt) s.lagAt = h.lagAt;
  if (h.lastFireAt) s.lastFireAt = h.lastFireAt;
  if (h.lastScheduledAt) s.lastScheduledAt = h.lastScheduledAt;
  if (h.lastError) s.lastError = { message: h.lastError, at: h.lastErrorAt ?? '' };
  if (h.connected !== undefined) s.connected = h.connected === '1';
  return s;
}

export class TriggerStore {
  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {}

  get eventsChannel(): string {
    return triggerEventsChannel(this.prefix);
  }

  private async announce(name: string): Promise<void> {
    await this.redis.publish(this.eventsChannel, name);
  }

  /** Creates or replaces a trigger; a replaced one keeps its uid and pause. */
  async put(name: string, spec: TriggerSpec): Promise<{ trigger: TriggerRecord; created: boolean }> {
    const now = new Date().toISOString();
    const old = await this.find(name);
    const trigger: TriggerRecord = {
      name,
      spec,
      paused: old?.paused ?? false,
      createdAt: old?.createdAt ?? now,
      updatedAt: now,
      uid: old?.uid ?? randomUUID(),
      generation: randomUUID(),
    };
    await this.redis.hset(triggersKey(this.prefix), name, JSON.stringify(trigger));
    await this.announce(name);
    return { trigger, created: !old };
  }

  async find(name: string): Promise<TriggerRecord | undefined> {
    const raw = await this.redis.hget(triggersKey(this.prefix), name);
    return raw ? (JSON.parse(raw) as TriggerRecord) : undefined;
  }

  async get(name: string): Promise<TriggerRecord> {
    const t = await this.find(name);
    if (!t) throw new TriggerNotFoundError(name);
    return t;
  }

  async list(): Promise<TriggerRecord[]> {
    const all = await this.redis.hgetall(triggersKey(this.prefix));
    return Object.values(all)
      .map((raw) => JSON.parse(raw) as TriggerRecord)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async setPaused(name: string, paused: boolean): Promise<TriggerRecord> {
    const t = await this.get(name);
    const next: TriggerRecord = { ...t, paused, updatedAt: new Date().toISOString() };
    await this.redis.hset(triggersKey(this.prefix), name, JSON.stringify(next));
    await this.announce(name);
    return next;
  }

  async delete(name: string): Promise<void> {
    const removed = await this.redis.hdel(triggersKey(this.prefix), name);
    if (!removed) throw new TriggerNotFoundError(name);
    await this.redis.del(triggerStateKey(this.prefix, name), triggerCronKey(this.prefix, name));
    await this.announce(name);
  }

  async state(name: string): Promise<TriggerState> {
    return parseTriggerState(await this.redis.hgetall(triggerStateKey(this.prefix, name)));
  }
}
