/** What the runner gives each trigger's consumer, and what it asks of one. */
import { setMaxListeners } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import type { TriggerRecord } from '../../common/triggers.js';
import type { TriggerStateWriter } from './state.js';
import type { TriggerSubmitter } from './submit.js';

export interface ConsumerContext {
  /** The deployment's Redis: a source without redisUrl is read there. */
  redisUrl: string;
  prefix: string;
  /** A shared connection to the deployment's Redis (tick locks, cron state). */
  redis: Redis;
  submitter: TriggerSubmitter;
  state: TriggerStateWriter;
  /** How often lag is measured. */
  lagEveryMs: number;
}

export interface Consumer {
  start(): Promise<void>;
  /** Paused: takes nothing new; what it took runs to its end. */
  setPaused(paused: boolean): Promise<void>;
  /** Stops taking events; what is in flight is left to the source (not acknowledged). */
  close(): Promise<void>;
}

export type ConsumerFactory = (t: TriggerRecord, ctx: ConsumerContext) => Consumer;

/**
 * A connection to a trigger's source that never gives up: commands wait through an outage
 * (maxRetriesPerRequest null, as BullMQ needs), reconnecting after 100 ms doubling to 5 s,
 * and every error and recovery is recorded in the trigger's state.
 */
export function sourceConnection(url: string, trigger: string, state: TriggerStateWriter, extra: RedisOptions = {}): Redis {
  const conn = new Redis(url, {
    maxRetriesPerRequest: null,
    enableAutoPipelining: false,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000),
    ...extra,
  });
  // An 'error' with no listener would throw and take the scheduler down.
  conn.on('error', (err: Error) => state.error(trigger, `source ${redactedHost(url)}: ${err.message}`));
  conn.on('ready', () => state.connected(trigger));
  return conn;
}

function redactedHost(url: string): string {
  try {
    const u = new URL(url);
    return u.protocol === 'unix:' ? u.pathname : u.host;
  } catch {
    return '(redis)';
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A consumer's stop signal: every invocation in flight listens on it, so no listener bound. */
export function stopController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
