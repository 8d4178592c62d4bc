/**
 * Warm synchronous invocation, end to end through HTTP (gateway -> BullMQ -> worker ->
 * container -> back), side by side in one run with its floor: a bare BullMQ add + wait
 * round trip on the same Redis. Throughput at concurrency 32 against a bare BullMQ
 * worker draining no-op jobs.
 */
import { engineEnv } from '../cli/engine-env.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedisServer } from '../cli/redis.js';
import { startWorker } from '../worker/main.js';
import { startGateway } from '../gateway/main.js';
import { median, percentile, round } from './stats.js';
import { closeIdle, post } from './http.js';

async function timed(n: number, concurrency: number, fn: () => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const t = performance.now();
        await fn();
        samples.push(performance.now() - t);
      }
    }),
  );
  return samples;
}

async function throughput(seconds: number, concurrency: number, fn: () => Promise<void>): Promise<number> {
  let done = 0;
  const end = performance.now() + seconds * 1000;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await fn();
        done++;
      }
    }),
  );
  return done / ((performance.now() - t) / 1000);
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { n: { type: 'string', default: '400' }, seconds: { type: 'string', default: '5' } } });
  const n = Number(values.n);
  const seconds = Number(values.seconds);
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-bench-invoke-'));
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    const redis = await startRedisServer({ dir: path.join(work, 'redis') });
    cleanup.push(() => redis.stop(false));
    const prefix = 'bench';
    const apiKey = 'bench-key-0123456789abcdef';
    process.stderr.write('bench invoke: starting worker and gateway...\n');
    const worker = await startWorker({ redisUrl: redis.url, engine: engineEnv(), prefix, stateDir: path.join(work, 'state'), budgetMb: 4096, pools: true, cgroupRoot: `/faasbox-bench-${process.pid}` });
    cleanup.push(async () => {
      await worker.close();
      await worker.engine.gc({ all: true });
      worker.engine.cgroups.removeRoot();
    });
    const gw = await startGateway({ apiKey, redisUrl: redis.url, prefix, port: 0 });
    cleanup.push(() => gw.close());
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    const dep = await fetch(`${gw.url}/v1/functions/noop`, { method: 'PUT', headers, body: JSON.stringify({ runtime: 'nodejs20', code: 'export default async (e) => ({ ok: true, n: e.n })', memoryMb: 128, cpu: 1000 }) });
    if (!dep.ok) throw new Error(`deploy failed: ${dep.status} ${await dep.text()}`);
    const invokeUrl = `${gw.url}/v1/functions/noop/invoke`;
    const invoke = async () => {
      const r = await post(invokeUrl, headers, '{"n":1}');
      if (r.status !== 200) throw new Error(`invoke answered ${r.status}: ${r.body}`);
    };

    // Second floor: a bare node:http round trip with the same client in the same process,
    // which any HTTP front end pays on top of the queue.
    const bare = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    });
    await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => bare.close(resolve)));
    const bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}/`;
    const http = async () => {
      const r = await post(bareUrl, headers, '{"n":1}');
      if (r.status !== 200) throw new Error(`bare server answered ${r.status}`);
    };

    // Floor: bare BullMQ on the same Redis, same process.
    const conns: Redis[] = [];
    const conn = () => {
      const c = new Redis(redis.url, { maxRetriesPerRequest: null });
      conns.push(c);
      return c;
    };
    const q = new Queue('floor', { connection: conn(), prefix: 'floor' });
    const qe = new QueueEvents('floor', { connection: conn(), prefix: 'floor' });
    const w = new Worker('floor', async () => ({ ok: true }), { connection: conn(), prefix: 'floor', concurrency: 16 });
    cleanup.push(async () => {
      await w.close();
      await qe.close();
      await q.close();
      for (const c of conns) c.disconnect();
    });
    await qe.waitUntilReady();
    const waiters = new Map<string, () => void>();
    qe.on('completed', ({ jobId }) => waiters.get(jobId)?.());
    let seq = 0;
    const floor = async () => {
      const id = `j${seq++}`;
      const done = new Promise<void>((resolve) => waiters.set(id, resolve));
      await q.add('noop', { n: 1 }, { jobId: id, removeOnComplete: true });
      await done;
      waiters.delete(id);
    };

    process.stderr.write('bench invoke: warming up...\n');
    await timed(400, 32, invoke); // boots the containers concurrency 32 needs
    await timed(50, 1, floor);
    await timed(50, 1, http);

    process.stderr.write(`bench invoke: ${n} sequential invocations each...\n`);
    const c1 = await timed(n, 1, invoke);
    const f1 = await timed(n, 1, floor);
    const h1 = await timed(n, 1, http);
    const c16 = await timed(n, 16, invoke);
    process.stderr.write(`bench invoke: throughput for ${seconds} s each...\n`);
    // Where the CPU goes under load: this process (client, gateway, worker), Redis, and the
    // containers (their cgroup subtree), per invocation.
    const cpu = () => ({
      main: process.cpuUsage(),
      redis: readFileSync(`/proc/${redis.pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).map(Number),
      containers: worker.engine.cgroups.rootCpuUsec(),
    });
    const cpu0 = cpu();
    const tp0 = performance.now();
    const rps = await throughput(seconds, 32, invoke);
    const cpu1 = cpu();
    const calls = (rps * (performance.now() - tp0)) / 1000;
    const ticksMs = 1000 / 100; // USER_HZ
    const cpuMs = {
      main: (cpu1.main.user + cpu1.main.system - cpu0.main.user - cpu0.main.system) / 1000 / calls,
      redis: ((cpu1.redis[0]! + cpu1.redis[1]! - cpu0.redis[0]! - cpu0.redis[1]!) * ticksMs) / calls,
      containers: cpu1.containers === undefined || cpu0.containers === undefined ? NaN : (cpu1.containers - cpu0.containers) / 1e3 / calls,
    };
    const drainN = 20000;
    await q.addBulk(Array.from({ length: 500 }, (_, i) => ({ name: 'noop', data: { i }, opts: { removeOnComplete: true } })));
    await new Promise((r) => setTimeout(r, 500));
    const t = performance.now();
    let drained = 0;
    const drainDone = new Promise<void>((resolve) => {
      w.on('completed', () => {
        if (++drained === drainN) resolve();
      });
    });
    for (let i = 0; i < drainN; i += 1000) {
      await q.addBulk(Array.from({ length: 1000 }, (_, j) => ({ name: 'noop', data: { i: i + j }, opts: { removeOnComplete: true } })));
    }
    await drainDone;
    const floorRps = drainN / ((performance.now() - t) / 1000);

    const out = {
      bench: 'invoke',
      p50_ms: round(median(c1)),
      p99_ms: round(percentile(c1, 99)),
      c16_p50_ms: round(median(c16)),
      floor_p50_ms: round(median(f1)),
      http_floor_p50_ms: round(median(h1)),
      rps: Math.round(rps),
      floor_rps: Math.round(floorRps),
      cpu_ms_per_invoke: { process: round(cpuMs.main), redis: round(cpuMs.redis), containers: round(cpuMs.containers) },
    };
    console.log(`warm invoke c=1   p50 ${out.p50_ms} ms  p99 ${out.p99_ms} ms   (floor BullMQ add+wait p50 ${out.floor_p50_ms} ms; ratio ${(out.p50_ms / out.floor_p50_ms).toFixed(2)}, target <= 1.5; p99 target <= 10 ms)`);
    console.log(`bare HTTP c=1     p50 ${out.http_floor_p50_ms} ms   (same client, node:http server; BullMQ floor + HTTP floor = ${round(out.floor_p50_ms + out.http_floor_p50_ms)} ms)`);
    console.log(`warm invoke c=16  p50 ${out.c16_p50_ms} ms`);
    console.log(`throughput c=32   ${out.rps} invocations/s   (floor bare BullMQ drain ${out.floor_rps} jobs/s; ratio ${(out.rps / out.floor_rps).toFixed(2)}, target >= 0.3)`);
    console.log(`CPU per invocation at c=32: ${out.cpu_ms_per_invoke.process} ms this process (client + gateway + worker), ${out.cpu_ms_per_invoke.redis} ms Redis, ${out.cpu_ms_per_invoke.containers} ms containers`);
    console.log(JSON.stringify(out));
  } finally {
    for (const c of cleanup.reverse()) await c().catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    closeIdle();
    rmSync(work, { recursive: true, force: true });
  }
}
