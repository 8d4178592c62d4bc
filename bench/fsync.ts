/**
 * What `FAASBOX_REDIS_FSYNC=always` costs against `everysec` (bench events, its "fsync"
 * section): async accepts (202: the record and the job written before the answer), one
 * at a time (p50) and 32 at a time (throughput), on the same stack, switching the
 * server's appendfsync with CONFIG SET between interleaved rounds so that both modes
 * share the machine's noise.
 */
import type { Redis } from 'ioredis';
import type { OutgoingHttpHeaders } from 'node:http';
import type { RedisFsync } from '../cli/redis.js';
import { post } from './http.js';
import { median, percentile, round } from './stats.js';

export interface FsyncRow {
  mode: RedisFsync;
  p50Ms: number;
  p99Ms: number;
  /** Accepts per second with 32 in flight. */
  perS: number;
}

export interface FsyncOptions {
  conn: Redis;
  /** The no-op function's invoke URL; `?async=true` is added. */
  invokeUrl: string;
  headers: OutgoingHttpHeaders;
  rounds: number;
  /** Sequential accepts per round and mode (latency). */
  sequential?: number;
  /** Accepts per round and mode with 32 in flight (throughput). */
  concurrent?: number;
}

export async function measureFsync(o: FsyncOptions): Promise<FsyncRow[]> {
  const url = `${o.invokeUrl}?async=true`;
  const accept = async () => {
    const r = await post(url, o.headers, '{"n":1}');
    if (r.status !== 202) throw new Error(`async invoke answered ${r.status}: ${r.body}`);
  };
  const samples: Record<RedisFsync, { lat: number[]; rates: number[] }> = { always: { lat: [], rates: [] }, everysec: { lat: [], rates: [] } };
  const before = ((await o.conn.config('GET', 'appendfsync')) as string[])[1];
  try {
    for (let r = 0; r < o.rounds; r++) {
      // Alternate which goes first, so that neither always follows the other's backlog.
      const order: RedisFsync[] = r % 2 === 0 ? ['always', 'everysec'] : ['everysec', 'always'];
      for (const mode of order) {
        await o.conn.config('SET', 'appendfsync', mode);
        for (let i = 0; i < (o.sequential ?? 200); i++) {
          const t = performance.now();
          await accept();
          samples[mode].lat.push(performance.now() - t);
        }
        const total = o.concurrent ?? 2000;
        let next = 0;
        const t = performance.now();
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            while (next++ < total) await accept();
          }),
        );
        samples[mode].rates.push(total / ((performance.now() - t) / 1000));
      }
    }
  } finally {
    if (before) await o.conn.config('SET', 'appendfsync', before);
  }
  return (['always', 'everysec'] as const).map((mode) => ({
    mode,
    p50Ms: round(median(samples[mode].lat)),
    p99Ms: round(percentile(samples[mode].lat, 99)),
    perS: Math.round(median(samples[mode].rates)),
  }));
}
