/**
 * Event-driven invocations, side by side with their floors in one run:
 *  - throughput of a queue trigger (no-op function, one event per invocation and batches
 *    of 10), draining a pre-filled BullMQ queue, against the bare BullMQ drain floor (a
 *    plain Worker doing nothing on the same Redis), interleaved round by round;
 *  - cron firing delay against the scheduled time (several every-second triggers);
 *  - async accept latency (202) beside the sync invoke's;
 *  - what the dev stack's Redis fsync setting costs the async accept (bench/fsync.ts).
 * `--only triggers,cron,accept,fsync` runs some of the sections.
 * Targets: batch-10 throughput >= 0.5x the floor; cron delay p99 < 50 ms.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedisServer } from '../cli/redis.js';
import { startWorker } from '../worker/main.js';
import { startGateway } from '../gateway/main.js';
import { startScheduler } from '../scheduler/main.js';
import { InvocationStore } from '../common/invocations.js';
import { median, percentile, round } from './stats.js';
import { closeIdle, post } from './http.js';
import { stopWorker } from './worker.js';
import { measureFsync, type FsyncRow } from './fsync.js';

const SECTIONS = ['triggers', 'cron', 'accept', 'fsync'] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { n: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '16' }, 'cron-seconds': { type: 'string', default: '10' }, only: { type: 'string', default: SECTIONS.join(',') } },
  });
  const only = new Set(values.only.split(',').map((x) => x.trim()));
  for (const x of only) if (!(SECTIONS as readonly string[]).includes(x)) throw new Error(`--only: unknown section "${x}" (${SECTIONS.join(', ')})`);
  const n = Number(values.n);
  const rounds = Number(values.rounds);
  const concurrency = Number(values.concurrency);
  const cronSeconds = Number(values['cron-seconds']);
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-bench-events-'));
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    const redis = await startRedisServer({ dir: path.join(work, 'redis') });
    cleanup.push(() => redis.stop(false));
    const prefix = 'bench';
    const apiKey = 'bench-key-0123456789abcdef';
    process.stderr.write('bench events: starting worker, gateway and scheduler...\n');
    const worker = await startWorker({ redisUrl: redis.url, prefix, stateDir: path.join(work, 'state'), budgetMb: 4096, pools: true, cgroupRoot: `/faasbox-bench-${process.pid}` });
    cleanup.push(stopWorker(worker));
    const gw = await startGateway({ apiKey, redisUrl: redis.url, prefix, port: 0 });
    cleanup.push(() => gw.close());
    const sched = await startScheduler({ redisUrl: redis.url, prefix });
    cleanup.push(() => sched.close());
    const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    cleanup.push(async () => conn.disconnect());
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    const api = async (method: string, p: string, body?: unknown) => {
      const r = await fetch(`${gw.url}${p}`, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) });
      if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
      return r.json() as Promise<unknown>;
    };
    for (const fn of ['noop', 'crontick']) await api('PUT', `/v1/functions/${fn}`, { runtime: 'nodejs20', code: fn === 'noop' ? 'export default async () => null' : 'export default async (e) => e', memoryMb: 128 });

    let seq = 0;
    const fill = async (name: string): Promise<Queue> => {
      const q = new Queue(name, { connection: conn });
      for (let i = 0; i < n; i += 1000) await q.addBulk(Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ name: 'e', data: { i: i + j } })));
      return q;
    };
    const drained = async (q: Queue, count: number) => {
      while ((await q.getCompletedCount()) + (await q.getFailedCount()) < count) await sleep(5);
    };
    /** Events per second of a trigger draining n waiting jobs; the clock starts at the PUT. */
    const trigger = async (batchSize?: number, count = n): Promise<number> => {
      const name = `ev-${seq++}`;
      const q = await fill(name);
      const t = performance.now();
      await api('PUT', `/v1/triggers/${name}`, { function: 'noop', source: { kind: 'queue', queue: name }, concurrency, ...(batchSize ? { batchSize } : {}) });
      await drained(q, count);
      const rate = count / ((performance.now() - t) / 1000);
      if ((await q.getFailedCount()) > 0) throw new Error(`${await q.getFailedCount()} source jobs of ${name} failed`);
      await api('DELETE', `/v1/triggers/${name}`);
      await q.obliterate({ force: true });
      await q.close();
      return rate;
    };
    const floor = async (): Promise<number> => {
      const name = `floor-${seq++}`;
      const q = await fill(name);
      const t = performance.now();
      const w = new Worker(name, async () => null, { connection: conn, concurrency });
      await drained(q, n);
      const rate = n / ((performance.now() - t) / 1000);
      await w.close();
      await q.obliterate({ force: true });
      await q.close();
      return rate;
    };

    const rates: Record<'floor' | 'b1' | 'b10', number[]> = { floor: [], b1: [], b10: [] };
    const records = new InvocationStore(conn, prefix);
    let b10Invocations = 0;
    if (only.has('triggers')) {
      process.stderr.write('bench events: warming up...\n');
      await trigger(undefined, n);
      await trigger(10, n);
    }
    for (let r = 0; only.has('triggers') && r < rounds; r++) {
      process.stderr.write(`bench events: round ${r + 1}/${rounds} (${n} events each)...\n`);
      rates.floor.push(await floor());
      rates.b1.push(await trigger());
      const before = (await records.idsOf('noop')).length;
      rates.b10.push(await trigger(10));
      b10Invocations += (await records.idsOf('noop')).length - before;
    }

    if (only.has('cron')) {
      process.stderr.write(`bench events: cron for ${cronSeconds} s...\n`);
      const cronTriggers = ['c0', 'c1', 'c2', 'c3', 'c4'];
      for (const name of cronTriggers) await api('PUT', `/v1/triggers/${name}`, { function: 'crontick', source: { kind: 'cron', schedule: '* * * * * *', overlap: 'allow' } });
      await sleep(cronSeconds * 1000);
      for (const name of cronTriggers) await api('DELETE', `/v1/triggers/${name}`);
      await sleep(1500);
    }
    const store = records;
    const submitDelays: number[] = [];
    const startDelays: number[] = [];
    for (const id of await store.idsOf('crontick')) {
      const rec = await store.get(id);
      const at = (rec?.result as { scheduledAtMs?: number } | undefined)?.scheduledAtMs;
      if (!rec || at === undefined) continue;
      submitDelays.push(Date.parse(rec.createdAt) - at);
      if (rec.startedAt) startDelays.push(Date.parse(rec.startedAt) - at);
    }

    const invokeUrl = `${gw.url}/v1/functions/noop/invoke`;
    const timedCalls = async (url: string, want: number, count: number) => {
      const out: number[] = [];
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        const r = await post(url, headers, '{"n":1}');
        out.push(performance.now() - t);
        if (r.status !== want) throw new Error(`${url} answered ${r.status}: ${r.body}`);
      }
      return out;
    };
    const accepts: number[] = [];
    const syncs: number[] = [];
    if (only.has('accept')) process.stderr.write('bench events: async accept against sync invoke...\n');
    for (let i = 0; only.has('accept') && i < 4; i++) {
      accepts.push(...(await timedCalls(`${invokeUrl}?async=true`, 202, 100)));
      syncs.push(...(await timedCalls(invokeUrl, 200, 100)));
    }

    let fsync: FsyncRow[] = [];
    if (only.has('fsync')) {
      process.stderr.write(`bench events: async accepts with appendfsync always against everysec, ${rounds} interleaved rounds...\n`);
      // Warm: the no-op's container and the gateway's paths.
      for (let i = 0; i < 100; i++) await post(`${invokeUrl}?async=true`, headers, '{"n":1}');
      fsync = await measureFsync({ conn, invokeUrl, headers, rounds });
    }
    const byMode = (mode: string) => fsync.find((r) => r.mode === mode);
    const out = {
      bench: 'events',
      n,
      rounds,
      concurrency,
      floor_jobs_per_s: Math.round(median(rates.floor)),
      b1_events_per_s: Math.round(median(rates.b1)),
      b10_events_per_s: Math.round(median(rates.b10)),
      b1_ratio: round(median(rates.b1) / median(rates.floor)),
      b10_ratio: round(median(rates.b10) / median(rates.floor)),
      b10_mean_batch: round((n * rounds) / b10Invocations, 1),
      cron_samples: submitDelays.length,
      cron_delay_p50_ms: round(median(submitDelays)),
      cron_delay_p99_ms: round(percentile(submitDelays, 99)),
      cron_start_p50_ms: round(median(startDelays)),
      cron_start_p99_ms: round(percentile(startDelays, 99)),
      async_accept_p50_ms: round(median(accepts)),
      sync_invoke_p50_ms: round(median(syncs)),
      fsync_always_accept_p50_ms: byMode('always')?.p50Ms,
      fsync_everysec_accept_p50_ms: byMode('everysec')?.p50Ms,
      fsync_always_accepts_per_s: byMode('always')?.perS,
      fsync_everysec_accepts_per_s: byMode('everysec')?.perS,
    };
    if (only.has('triggers')) {
      console.log(`queue trigger, 1 event per invocation   ${out.b1_events_per_s} events/s  (${out.b1_ratio}x the floor)`);
      console.log(`queue trigger, batches of 10            ${out.b10_events_per_s} events/s  (${out.b10_ratio}x the floor; target >= 0.5; ${out.b10_mean_batch} events per invocation)`);
      console.log(`floor: bare BullMQ drain                ${out.floor_jobs_per_s} jobs/s  (concurrency ${concurrency}, medians of ${rounds} interleaved rounds of ${n})`);
    }
    if (only.has('cron')) {
      console.log(`cron delay (submitted - scheduled)      p50 ${out.cron_delay_p50_ms} ms  p99 ${out.cron_delay_p99_ms} ms  (${out.cron_samples} ticks; target p99 < 50 ms)`);
      console.log(`cron start (worker started - scheduled) p50 ${out.cron_start_p50_ms} ms  p99 ${out.cron_start_p99_ms} ms`);
    }
    if (only.has('accept')) console.log(`async accept (202) p50 ${out.async_accept_p50_ms} ms   sync invoke (200) p50 ${out.sync_invoke_p50_ms} ms`);
    for (const r of fsync) console.log(`async accept, appendfsync ${r.mode.padEnd(8)}     p50 ${r.p50Ms} ms  p99 ${r.p99Ms} ms  ${r.perS} accepts/s at 32 in flight`);
    console.log(JSON.stringify(out));
  } finally {
    for (const c of cleanup.reverse()) await c().catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    closeIdle();
    rmSync(work, { recursive: true, force: true });
  }
}
