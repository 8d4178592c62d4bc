/**
 * Idempotency keys of async invocations: the first invocation accepted under a key owns it
 * for 24 h, and a repeat under the same key (an `Idempotency-Key` header, a queue trigger's
 * job id) is answered with that invocation's id instead of running again.
 *
 * Keys, under the deployment prefix:
 *   {p}:fn:{name}:idem:{sha256 of the key}  STRING  the owning invocation's id, EX 24 h
 *
 * SET NX is the claim, so of two concurrent repeats exactly one becomes the invocation.
 * The key is hashed so that any string a client sends (up to MAX_KEY_LENGTH) makes a
 * bounded Redis key.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisScript } from '../redis-script.js';

export const IDEMPOTENCY_TTL_S = 24 * 3600;
export const MAX_KEY_LENGTH = 255;

export function idempotencyKey(prefix: string, fn: string, key: string): string {
  return `${prefix}:fn:${fn}:idem:${createHash('sha256').update(key).digest('hex')}`;
}

// KEYS: 1 key. ARGV: 1 invocation id. Deletes the key only while that invocation owns it.
const dropScript = new RedisScript(
  'idempotency-drop',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
);

export class IdempotencyKeys {
  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    readonly ttlSeconds = IDEMPOTENCY_TTL_S,
  ) {}

  /** Claims `key` for invocation `id`: undefined when claimed now, else the id that owns it. */
  async claim(fn: string, key: string, id: string): Promise<string | undefined> {
    const k = idempotencyKey(this.prefix, fn, key);
    for (;;) {
      if ((await this.redis.set(k, id, 'EX', this.ttlSeconds, 'NX')) === 'OK') return undefined;
      const owner = await this.redis.get(k);
      // Expired or dropped between the two commands: claim again.
      if (owner !== null) return owner;
    }
  }

  /** The invocation was not accepted after all: a later try under the key may run. */
  async drop(fn: string, key: string, id: string): Promise<void> {
    await dropScript.run(this.redis, [idempotencyKey(this.prefix, fn, key)], [id]);
  }
}
