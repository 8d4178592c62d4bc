/**
 * A function's concurrency limit (its spec's `concurrency`, as Lambda's reserved
 * concurrency): at most `limit` invocations of the function run at once, across every
 * gateway and worker. The gateway takes a slot for a synchronous invocation before it
 * queues it (none free: 429 CONCURRENCY_LIMIT); a worker takes one for an asynchronous
 * invocation when it picks the job up (none free: the job waits and is tried again).
 *
 * The slots are one sorted set per function in Redis, invocation id -> expiry. A slot
 * whose holder died (a gateway or worker crash between take and give back) lapses by
 * itself at its expiry, instead of throttling the function forever.
 */
import type { Redis } from 'ioredis';
import { Counter, type Registry } from 'prom-client';
import { registered } from './metrics.js';
import { concurrencyKey } from './keys.js';
import { RedisScript } from './redis-script.js';

// Redis's own clock, so that gateways and workers on machines whose clocks disagree
// still agree on when a slot lapses. (replicate_commands: Redis < 5 refuses writes after
// TIME otherwise; later versions replicate effects anyway.)
const TAKE = new RedisScript(
  'concurrency-take',
  `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + hold, ARGV[3])
if redis.call('PTTL', KEYS[1]) < hold then redis.call('PEXPIRE', KEYS[1], hold) end
return 1
`,
);

export class ConcurrencyLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(fn: string): string {
    return concurrencyKey(this.prefix, fn);
  }

  /**
   * Takes one of fn's `limit` slots for invocation `id`, held for at most holdMs; false
   * when all are taken. Taking again with the same id (a job re-run after its worker died)
   * renews that id's slot instead of taking a second one.
   */
  async take(fn: string, id: string, limit: number, holdMs: number): Promise<boolean> {
    return (await TAKE.run(this.redis, [this.key(fn)], [limit, Math.max(1, Math.round(holdMs)), id])) === 1;
  }

  async give(fn: string, id: string): Promise<void> {
    await this.redis.zrem(this.key(fn), id);
  }

  /** Slots taken now, lapsed ones not counted (tests, diagnostics). */
  async taken(fn: string): Promise<number> {
    const [sec, usec] = await this.redis.time();
    return this.redis.zcount(this.key(fn), Number(sec) * 1000 + Math.floor(Number(usec) / 1000) + 1, '+inf');
  }
}

/**
 * Invocations held back by their function's limit: sync ones answered 429 by a gateway,
 * async ones put back by a worker (counted each time). One collector per registry, shared
 * when gateway and worker run in one process.
 */
export function throttledCounter(registry: Registry): Counter<'function' | 'mode'> {
  const name = 'faasbox_invocations_throttled_total';
  return registered(
    registry,
    name,
    () => new Counter({ name, help: "Invocations held back by their function's concurrency limit (sync: answered 429; async: put back to wait, each time)", labelNames: ['function', 'mode'] as const, registers: [registry] }),
  );
}
