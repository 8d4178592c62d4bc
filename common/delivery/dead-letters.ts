/**
 * Dead letters, per function: async invocations whose last attempt failed (or whose event
 * grew older than its maxEventAgeMs), with their event, error and attempts, kept until
 * they are redriven or purged.
 *
 * Keys, under the deployment prefix:
 *   {p}:fn:{name}:dead-letters       ZSET  entry id -> sequence number (the listing order and cursor)
 *   {p}:fn:{name}:dead-letters:data  HASH  entry id -> the entry's JSON
 *   {p}:fn:{name}:dead-letters:seq   STRING the last sequence number given
 *
 * An entry's id is its invocation's id: a worker that dies after writing the entry and
 * before the record, and whose job runs again, writes the same entry, not a second one.
 * Beyond StorageLimits.deadLettersPerFunction the oldest entries go, in the same script.
 */
import type { Redis } from 'ioredis';
import type { ErrorInfo } from '../errors.js';
import type { InvocationSource } from '../delivery-spec.js';
import type { HttpRequestData } from '../queue.js';
import { DEFAULT_STORAGE_LIMITS } from '../limits.js';
import { RedisScript } from '../redis-script.js';

export interface DeadLetter {
  id: string;
  invocationId: string;
  function: string;
  version: string;
  event: unknown;
  error: ErrorInfo;
  attempts: number;
  firstAttemptAt: string;
  lastAttemptAt: string;
  source: InvocationSource;
  /**
   * Why it stopped: the last error was not retryable, the attempts ran out, the event grew
   * too old, or a trigger's source handed over an event the function cannot be given (too
   * large, not JSON: attempts 0, and `event` holds only its size and a preview when the
   * event itself is what could not be kept), or the function reported a batch's item
   * failed (batchItemFailures) in each of the trigger's attempts: `event` is then that
   * item alone, as an array of one, the shape the function is given, so a redrive runs
   * it as a batch of one.
   */
  reason: 'not-retryable' | 'attempts-exhausted' | 'event-too-old' | 'event-rejected' | 'batch-item-failed';
  deadLetteredAt: string;
  /** The HTTP request without its body (the event is the body), for a redrive. */
  http?: Omit<HttpRequestData, 'body'>;
}

export interface DeadLetterPage {
  entries: DeadLetter[];
  /** Give it back as `cursor` for the next page; absent on the last one. */
  nextCursor?: string;
}

export const MAX_PAGE = 1000;

// KEYS: 1 index zset, 2 data hash, 3 seq. ARGV: 1 id, 2 entry JSON, 3 kept.
// Returns 1 when added, 0 when an entry of that id was there already.
const addScript = new RedisScript(
  'dead-letter-add',
  `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #gone, 2 do redis.call('HDEL', KEYS[2], gone[i]) end
end
return 1
`,
);

export function deadLetterKeys(prefix: string, fn: string): [index: string, data: string, seq: string] {
  const base = `${prefix}:fn:${fn}:dead-letters`;
  return [base, `${base}:data`, `${base}:seq`];
}

export class DeadLetters {
  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    readonly kept = DEFAULT_STORAGE_LIMITS.deadLettersPerFunction,
  ) {}

  /** True when added, false when the entry was there already. */
  async add(entry: DeadLetter): Promise<boolean> {
    return (await addScript.run(this.redis, deadLetterKeys(this.prefix, entry.function), [entry.id, JSON.stringify(entry), this.kept])) === 1;
  }

  async get(fn: string, id: string): Promise<DeadLetter | undefined> {
    const raw = await this.redis.hget(deadLetterKeys(this.prefix, fn)[1], id);
    return raw === null ? undefined : (JSON.parse(raw) as DeadLetter);
  }

  /** Oldest first, `limit` entries after `cursor` (an opaque sequence number). */
  async list(fn: string, opts: { cursor?: string; limit: number }): Promise<DeadLetterPage> {
    const [index, data] = deadLetterKeys(this.prefix, fn);
    const after = opts.cursor === undefined ? '-inf' : `(${opts.cursor}`;
    const flat = await this.redis.zrangebyscore(index, after, '+inf', 'WITHSCORES', 'LIMIT', 0, opts.limit);
    const ids: string[] = [];
    let last: string | undefined;
    for (let i = 0; i < flat.length; i += 2) {
      ids.push(flat[i]!);
      last = flat[i + 1];
    }
    const raws = ids.length ? await this.redis.hmget(data, ...ids) : [];
    const entries = raws.flatMap((r) => (r === null ? [] : [JSON.parse(r) as DeadLetter]));
    return ids.length === opts.limit && last !== undefined ? { entries, nextCursor: last } : { entries };
  }

  /** Every entry's id, oldest first. */
  async ids(fn: string): Promise<string[]> {
    return this.redis.zrange(deadLetterKeys(this.prefix, fn)[0], '0', '-1');
  }

  async count(fn: string): Promise<number> {
    return this.redis.zcard(deadLetterKeys(this.prefix, fn)[0]);
  }

  /** Removes the given entries (all without ids); returns how many were there. */
  async remove(fn: string, ids?: string[]): Promise<number> {
    const [index, data, seq] = deadLetterKeys(this.prefix, fn);
    if (ids === undefined) {
      const n = await this.redis.zcard(index);
      await this.redis.del(index, data, seq);
      return n;
    }
    if (ids.length === 0) return 0;
    const replies = await this.redis.multi().zrem(index, ...ids).hdel(data, ...ids).exec();
    return Number(replies?.[0]?.[1] ?? 0);
  }
}
