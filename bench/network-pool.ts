/**
 * The specialised start in bridge vs none mode, through the real pool, end to end over
 * HTTP (bench/network.ts runs it): one worker with a bridge network, pools on; each round
 * deploys a none function and a bridge function, waits until a stem cell of each shape is
 * idle and both codes are pre-pulled, and invokes both (order alternated per round), each
 * invocation required to be `specialized`. A bridge function deployed first and kept
 * keeps the bridge shape's stem cells alive between rounds, as a worker with bridge
 * functions deployed would.
 */
import path from 'node:path';
import { engineEnv } from '../cli/engine-env.js';
import { startRedisServer } from '../cli/redis.js';
import { startGateway } from '../gateway/main.js';
import { startWorker } from '../worker/main.js';
import { CodeStore } from '../worker/instance/code.js';
import { closeIdle, post } from './http.js';
import { stopWorker } from './worker.js';

export interface SpecialisedStarts {
  none: number[];
  bridge: number[];
  /** The worker's phases (Server-Timing: queue, init, exec, ...), per mode. */
  phases: { none: Map<string, number[]>; bridge: Map<string, number[]> };
}

async function waitFor(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function specialisedStarts(work: string, subnet: string, rounds: number, warmup = 3): Promise<SpecialisedStarts> {
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    const redis = await startRedisServer({ dir: path.join(work, 'redis') });
    cleanup.push(() => redis.stop(false));
    const stateDir = path.join(work, 'pooled');
    const worker = await startWorker({
      redisUrl: redis.url,
      engine: engineEnv(),
      prefix: 'netbench',
      stateDir,
      budgetMb: 4096,
      pools: true,
      cgroupRoot: `/faasbox-bench-n-${process.pid}`,
      network: { subnet, deny: [], dns: [] },
    });
    cleanup.push(stopWorker(worker));
    const apiKey = 'bench-key-0123456789abcdef';
    const gw = await startGateway({ apiKey, redisUrl: redis.url, prefix: 'netbench', port: 0 });
    cleanup.push(() => gw.close());
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    const code = new CodeStore(stateDir);
    const deploy = async (name: string, i: number, bridge: boolean): Promise<string> => {
      const body = { runtime: 'nodejs20', code: `export default async () => ({ i: ${i} })`, memoryMb: 128, ...(bridge ? { network: { mode: 'bridge' } } : {}) };
      const r = await fetch(`${gw.url}/v1/functions/${name}`, { method: 'PUT', headers, body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`deploy ${name}: ${r.status} ${await r.text()}`);
      return ((await r.json()) as { spec: { code: { digest: string } } }).spec.code.digest;
    };
    const invoke = async (name: string): Promise<{ ms: number; phases: [string, number][] }> => {
      const t = performance.now();
      const r = await post(`${gw.url}/v1/functions/${name}/invoke`, headers, '{}');
      const ms = performance.now() - t;
      if (r.status !== 200) throw new Error(`invoke ${name}: ${r.status} ${r.body}`);
      if (r.headers['x-cold-start'] !== 'specialized') throw new Error(`invoke ${name}: expected a specialized start, got ${String(r.headers['x-cold-start'])}`);
      const phases = [...String(r.headers['server-timing'] ?? '').matchAll(/(\w+);dur=([\d.]+)/g)].map((m) => [m[1]!, Number(m[2])] as [string, number]);
      return { ms, phases };
    };
    const idle = (bridge: boolean) => worker.pool.slots().some((s) => s.kind === 'stem' && s.runtime === 'nodejs20' && s.state === 'idle' && (s.network === 'bridge') === bridge);
    // The engine's seed refill too: a bridge seed's eth0 is made when it parks (~1 ms on the worker's thread).
    const seedsParked = () => (worker.engine.seeds?.parked ?? []).every((s) => s.ready && (s.network === 'none' || s.attachment));
    const quiet = () => worker.pool.slots().every((s) => s.state !== 'starting' && s.state !== 'removing') && seedsParked();

    await deploy('keep', 0, true);
    const out: SpecialisedStarts = { none: [], bridge: [], phases: { none: new Map(), bridge: new Map() } };
    process.stderr.write(`bench network: specialised starts, ${warmup} warm-up rounds, then ${rounds} rounds...\n`);
    for (let i = -warmup; i < rounds; i++) {
      const tag = i < 0 ? `u${-i}` : `${i}`;
      const digests = [await deploy(`n${tag}`, i, false), await deploy(`b${tag}`, i + 1e6, true)];
      const order = i % 2 === 0 ? (['n', 'b'] as const) : (['b', 'n'] as const);
      for (const kind of order) {
        // Measured once the background work a deploy and the last specialisation started is
        // done (a stem's refill, the pre-pull), as bench/coldstart.ts measures its own.
        await waitFor(() => idle(false) && idle(true) && quiet() && digests.every((d) => code.has(d)), 'idle stem cells of both modes');
        const r = await invoke(`${kind}${tag}`);
        if (i < 0) continue;
        (kind === 'n' ? out.none : out.bridge).push(r.ms);
        const byPhase = out.phases[kind === 'n' ? 'none' : 'bridge'];
        for (const [p, v] of r.phases) byPhase.set(p, [...(byPhase.get(p) ?? []), v]);
      }
      for (const kind of ['n', 'b']) await fetch(`${gw.url}/v1/functions/${kind}${tag}`, { method: 'DELETE', headers });
    }
    return out;
  } finally {
    closeIdle();
    for (const c of cleanup.reverse()) await c().catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
  }
}
