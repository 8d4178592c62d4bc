/**
 * Cold starts, side by side in one run, end to end through HTTP:
 *   warm         an invocation that finds a warm container of its function
 *   specialized  the first invocation of a newly deployed function: a stem cell takes it
 *   cold         the first invocation with pools disabled: a container booted from nothing
 *   floor        `node -e 0` with a clean environment: starting the runtime alone
 * plus the refill rate (pooled containers created per second) and the idle memory per
 * pooled container beyond the runtime's own RSS.
 */
import { engineEnv } from '../cli/engine-env.js';
import { stopWorker } from './worker.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startRedisServer } from '../cli/redis.js';
import { startWorker, runtimeImages } from '../worker/main.js';
import { startGateway } from '../gateway/main.js';
import { RuntimeInstance } from '../worker/instance/instance.js';
import { CodeStore } from '../worker/instance/code.js';
import { stemLimits } from '../worker/instance/specconv.js';
import { median, round } from './stats.js';
import { closeIdle, post } from './http.js';

function nodeFloor(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const p = spawn(process.execPath, ['-e', '0'], { env: {}, stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', () => resolve(performance.now() - t));
  });
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitFor(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for the pool');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { n: { type: 'string', default: '25' }, warmup: { type: 'string', default: '3' } } });
  const n = Number(values.n);
  const warmupRounds = Number(values.warmup);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a whole number of rounds >= 1, not ${JSON.stringify(values.n)}`);
  if (!Number.isInteger(warmupRounds) || warmupRounds < 0) throw new Error(`--warmup must be a whole number of rounds >= 0, not ${JSON.stringify(values.warmup)}`);
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-bench-coldstart-'));
  const cleanup: (() => Promise<unknown>)[] = [];
  const stop = stopWorker;
  try {
    const redis = await startRedisServer({ dir: path.join(work, 'redis') });
    cleanup.push(() => redis.stop(false));
    const apiKey = 'bench-key-0123456789abcdef';
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    process.stderr.write('bench coldstart: starting two stacks (pools on, pools off)...\n');
    const pooled = await startWorker({ redisUrl: redis.url, engine: engineEnv(), prefix: 'pooled', stateDir: path.join(work, 'pooled'), budgetMb: 4096, pools: true, cgroupRoot: `/faasbox-bench-p-${process.pid}` });
    cleanup.push(stop(pooled));
    const bare = await startWorker({ redisUrl: redis.url, engine: engineEnv(), prefix: 'bare', stateDir: path.join(work, 'bare'), budgetMb: 4096, pools: false, cgroupRoot: `/faasbox-bench-b-${process.pid}` });
    cleanup.push(stop(bare));
    const gwPooled = await startGateway({ apiKey, redisUrl: redis.url, prefix: 'pooled', port: 0 });
    cleanup.push(() => gwPooled.close());
    const gwBare = await startGateway({ apiKey, redisUrl: redis.url, prefix: 'bare', port: 0 });
    cleanup.push(() => gwBare.close());

    /** Deploys and returns the digest of the function's code. */
    const deploy = async (url: string, name: string, i: number): Promise<string> => {
      const r = await fetch(`${url}/v1/functions/${name}`, { method: 'PUT', headers, body: JSON.stringify({ runtime: 'nodejs20', code: `export default async () => ({ i: ${i} })`, memoryMb: 128 }) });
      if (!r.ok) throw new Error(`deploy: ${r.status} ${await r.text()}`);
      return ((await r.json()) as { spec: { code: { digest: string } } }).spec.code.digest;
    };
    // The pooled worker's code layers: each deploy is pre-pulled into them in the background.
    const pooledCode = new CodeStore(path.join(work, 'pooled'));
    const bareCode = new CodeStore(path.join(work, 'bare'));
    // The worker's own account of each kind (Server-Timing: queue, init, exec), to show
    // where the end-to-end time goes.
    const phases = new Map<string, Map<string, number[]>>();
    /** False during the warm-up rounds: nothing they measure is kept. */
    let measuring = true;
    const invoke = async (url: string, name: string, want: string): Promise<number> => {
      const t = performance.now();
      const r = await post(`${url}/v1/functions/${name}/invoke`, headers, '{}');
      const ms = performance.now() - t;
      if (r.status !== 200) throw new Error(`invoke ${name}: ${r.status}`);
      const kind = r.headers['x-cold-start'];
      if (kind !== want) throw new Error(`invoke ${name}: expected a ${want} start, got ${kind}`);
      if (!measuring) return ms;
      const byPhase = phases.get(want) ?? phases.set(want, new Map()).get(want)!;
      for (const m of String(r.headers['server-timing'] ?? '').matchAll(/(\w+);dur=([\d.]+)/g)) {
        const list = byPhase.get(m[1]!) ?? byPhase.set(m[1]!, []).get(m[1]!)!;
        list.push(Number(m[2]));
      }
      return ms;
    };
    const idleStems = () => pooled.pool.slots().filter((s) => s.kind === 'stem' && s.runtime === 'nodejs20' && s.state === 'idle').length;

    await waitFor(() => idleStems() >= 1);
    const warm: number[] = [];
    const specialized: number[] = [];
    const cold: number[] = [];
    const floor: number[] = [];
    await deploy(gwPooled.url, 'w', 0);
    await invoke(gwPooled.url, 'w', 'specialized');
    await waitFor(() => idleStems() >= 1);
    process.stderr.write(`bench coldstart: ${warmupRounds} warm-up rounds, then ${n} rounds...\n`);
    // The warm-up rounds run the same steps unmeasured: the process's JIT compiles the
    // paths of each kind of start on background threads, competing for this 2-core
    // machine's second core with what is measured.
    for (let i = -warmupRounds; i < n; i++) {
      measuring = i >= 0;
      const tag = measuring ? `${i}` : `u${-i}`;
      const record = (list: number[], ms: number) => measuring && list.push(ms);
      for (let k = 0; k < 5; k++) record(warm, await invoke(gwPooled.url, 'w', 'warm'));
      const digest = await deploy(gwPooled.url, `s${tag}`, i);
      // Measured once the worker has a stem cell and has pre-pulled the deploy's code, both
      // background work that a deploy starts. Invoked the moment the deploy returns, the
      // pull is still on its way and the first call waits for it: ~0.6 ms more (alternated
      // per round: 7.60/6.63 ms after the pull, 8.15/7.25 ms right after the deploy).
      await waitFor(() => idleStems() >= 1 && pooledCode.has(digest));
      record(specialized, await invoke(gwPooled.url, `s${tag}`, 'specialized'));
      // Its warm container goes with it, so rounds beyond the memory budget's worth of
      // containers still find room for a stem cell.
      await fetch(`${gwPooled.url}/v1/functions/s${tag}`, { method: 'DELETE', headers });
      const coldDigest = await deploy(gwBare.url, `c${tag}`, i);
      // The pooled stack's background work after the specialisation and the delete above
      // (a stem cell's boot, the deleted function's container torn down) runs in this
      // process; the cold start is measured once it is done, as the floor is (on an
      // otherwise idle machine), and once the bare worker has pre-pulled the code (not
      // waiting for that pull: 1-4 ms more, alternated per round: 46.3/45.8 ms against
      // 47.1/49.9).
      await waitFor(() => idleStems() >= 1 && pooled.pool.slots().every((x) => x.state !== 'starting' && x.state !== 'removing') && bareCode.has(coldDigest));
      record(cold, await invoke(gwBare.url, `c${tag}`, 'cold'));
      record(floor, await nodeFloor());
    }

    // Refill: booting stem cells from nothing, 2 at a time (this machine has 2 cores).
    const images = await runtimeImages(path.join(work, 'pooled'));
    const k = 8;
    const t = performance.now();
    const booted: RuntimeInstance[] = [];
    for (let i = 0; i < k; i += 2) {
      booted.push(...(await Promise.all([0, 1].map(() => RuntimeInstance.boot(pooled.engine, { image: images.nodejs20!, limits: stemLimits(128, 1) })))));
    }
    const refillPerS = k / ((performance.now() - t) / 1000);
    // Idle overhead: what a pooled container holds beyond the runtime process itself:
    // the monitor and init processes, and the writable layer's tmpfs.
    await new Promise((r) => setTimeout(r, 300));
    const overheads = booted.map((inst) => {
      const init = inst.container.pid;
      const monitor = Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${init}/status`, 'utf8'))![1]);
      const runtime = childrenOf(init)[0]!;
      const cgroupBytes = inst.container.stats().memoryCurrentBytes;
      return { extraKb: rssKb(monitor) + rssKb(init), runtimeKb: rssKb(runtime), cgroupBytes };
    });
    await Promise.all(booted.map((b) => b.destroy()));
    const overheadMb = median(overheads.map((o) => o.extraKb / 1024));
    const runtimeMb = median(overheads.map((o) => o.runtimeKb / 1024));

    const out = {
      bench: 'coldstart',
      warm_p50_ms: round(median(warm)),
      specialized_p50_ms: round(median(specialized)),
      cold_p50_ms: round(median(cold)),
      runtime_floor_ms: round(median(floor)),
      refill_per_s: round(refillPerS),
      pool_overhead_mb: round(overheadMb),
    };
    console.log(`warm         p50 ${out.warm_p50_ms} ms`);
    console.log(`specialized  p50 ${out.specialized_p50_ms} ms   (${(out.specialized_p50_ms / out.runtime_floor_ms).toFixed(2)}x the runtime floor; target <= 0.2x)`);
    console.log(`cold         p50 ${out.cold_p50_ms} ms   (floor + ${(out.cold_p50_ms - out.runtime_floor_ms).toFixed(1)} ms; target <= floor + 25 ms)`);
    console.log(`floor        p50 ${out.runtime_floor_ms} ms   (node -e 0, clean environment)`);
    console.log(`refill       ${out.refill_per_s} containers/s`);
    console.log(`pool overhead ${out.pool_overhead_mb} MB per idle container beyond the runtime's RSS of ${runtimeMb.toFixed(1)} MB (target < 2 MB)`);
    for (const [kind, byPhase] of phases) {
      const parts = [...byPhase].map(([phase, list]) => `${phase} ${round(median(list))}`).join(', ');
      console.log(`  ${kind.padEnd(12)} worker's phases, p50 ms: ${parts}`);
    }
    console.log(JSON.stringify(out));
  } finally {
    for (const c of cleanup.reverse()) await c().catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    closeIdle();
    rmSync(work, { recursive: true, force: true });
  }
}
