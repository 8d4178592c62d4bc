/**
 * How many bytes of async invocations each function has accepted and not yet finished:
 * the gateway admits an invocation against the function's bound (StorageLimits
 * .queuedBytesPerFunction, 429 QUEUE_FULL beyond it) and the worker releases it once the
 * final record is written. A job keeps its body in Redis until it runs, so without a bound
 * one caller could fill Redis with invocations no worker will reach for hours.
 *
 * Keys, under the deployment prefix:
 *   {p}:fn:{name}:queued        HASH  invocation id -> bytes, and `total`
 *   {p}:fn:{name}:queued-until  ZSET  invocation id -> epoch ms after which its entry lapses
 *
 * An entry whose release never comes (its job failed for good, or its worker died between
 * the record and the release) lapses after the job's deadline plus LAPSE_GRACE_MS, so the
 * bound cannot leak shut. Admission and release are scripts: concurrent gateways cannot
 * both take the last room.
 */
import type { Redis } from 'ioredis';
import { queuedBytesKeys } from './keys.js';
import { RedisScript } from './redis-script.js';

/**
 * What a job costs in Redis besides its body and request headers: its hash and its record.
 * Measured with MEMORY USAGE on an async job with an empty body and two headers: 1,816 B,
 * so that empty bodies are bounded too.
 */
export const JOB_OVERHEAD_BYTES = 2048;
/** An entry lapses this long after its job's deadline: past the run and retries of a job started just before it. */
export const LAPSE_GRACE_MS = 3600_000;

// KEYS: 1 bytes hash, 2 lapse zset. ARGV: 1 id, 2 bytes, 3 limit, 4 lapse at (ms), 5 now (ms),
// 6 most invocations held at once (0: no bound; the function's async.maxQueued).
// Returns {1, total after} when admitted, {0, total} when the bytes do not fit, {-1, total}
// when the count does not.
const admitScript = new RedisScript(
  'queued-bytes-admit',
  `
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[5], 'LIMIT', 0, 100)
for _, id in ipairs(lapsed) do
  local b = redis.call('HGET', KEYS[1], id)
  if b then
    redis.call('HDEL', KEYS[1], id)
    redis.call('HINCRBY', KEYS[1], 'total', -tonumber(b))
  end
  redis.call('ZREM', KEYS[2], id)
end
-- An id admitted before (an acceptance tried again) is counted once: its earlier bytes out.
local prev = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0') - prev
local bytes = tonumber(ARGV[2])
if total + bytes > tonumber(ARGV[3]) then return {0, total + prev} end
local most = tonumber(ARGV[6] or '0')
if most > 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  local held = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], 'total')
  if held >= most then return {-1, total} end
end
redis.call('HSET', KEYS[1], ARGV[1], bytes)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {1, redis.call('HINCRBY', KEYS[1], 'total', bytes - prev)}
`,
);

// KEYS: 1 bytes hash, 2 lapse zset. ARGV: 1 id. Returns the bytes released (0: none held).
const releaseScript = new RedisScript(
  'queued-bytes-release',
  `
local b = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if not b then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'total', -tonumber(b))
return tonumber(b)
`,
);

export class QueuedBytes {
  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {}

  private keys(fn: string): string[] {
    return queuedBytesKeys(this.prefix, fn);
  }

  /** Take `bytes` of the function's room for invocation `id`; false when they do not fit. */
  async admit(fn: string, id: string, bytes: number, limit: number, deadline: number): Promise<boolean> {
    return (await this.admitCounted(fn, id, bytes, limit, deadline)) === 'admitted';
  }

  /** As admit, and with `maxCount` at most that many invocations held at once: which bound refused it. */
  async admitCounted(fn: string, id: string, bytes: number, limit: number, deadline: number, maxCount = 0): Promise<'admitted' | 'bytes' | 'count'> {
    const [admitted] = (await admitScript.run(this.redis, this.keys(fn), [id, bytes, limit, deadline + LAPSE_GRACE_MS, Date.now(), maxCount])) as [number, number];
    return admitted === 1 ? 'admitted' : admitted === 0 ? 'bytes' : 'count';
  }

  /** Invocations the function holds now (accepted, not finished). */
  async count(fn: string): Promise<number> {
    const key = this.keys(fn)[0]!;
    const [len, hasTotal] = await Promise.all([this.redis.hlen(key), this.redis.hexists(key, 'total')]);
    return len - hasTotal;
  }

  /** Give back what invocation `id` holds (idempotent). */
  async release(fn: string, id: string): Promise<number> {
    return (await releaseScript.run(this.redis, this.keys(fn), [id])) as number;
  }

  /** Bytes the function holds now. */
  async total(fn: string): Promise<number> {
    return Number((await this.redis.hget(this.keys(fn)[0]!, 'total')) ?? 0);
  }
}
