/**
 * Everything a Redis server holds, as text: every key (SCAN over the whole keyspace, no
 * prefix filter) with every value of every type. For tests that assert what must never
 * be stored, wherever a component might have put it.
 */
import type { Redis } from 'ioredis';

export async function dumpRedis(redis: Redis): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      out.push(key);
      const type = await redis.type(key);
      let values: Buffer[] = [];
      if (type === 'string') values = [(await redis.getBuffer(key)) ?? Buffer.alloc(0)];
      else if (type === 'hash') values = await redis.hgetallBuffer(key).then((h) => Object.entries(h).flatMap(([k, v]) => [Buffer.from(k), v]));
      else if (type === 'list') values = await redis.lrangeBuffer(key, 0, -1);
      else if (type === 'set') values = await redis.smembersBuffer(key);
      else if (type === 'zset') values = await redis.zrangeBuffer(key, '0', '-1');
      else if (type === 'stream') values = (await redis.xrangeBuffer(key, '-', '+')).flatMap(([id, fields]) => [id, ...fields]);
      else throw new Error(`key ${key} has a type this dump does not read: ${type}`);
      for (const v of values) out.push(`${key} ${v.toString('latin1')}`);
    }
  } while (cursor !== '0');
  return out;
}
