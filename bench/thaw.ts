/**
 * What freezing idle warm containers costs the next invocation, end to end through HTTP,
 * side by side in one run (round-robin, so a noisy moment hurts all alike):
 *   warm         back to back: the container is still running (within the freeze grace)
 *   idle         after an idle pause, on a worker that never freezes (FAASBOX_FREEZE_GRACE_MS=0)
 *   thawed       after the same pause, on a worker that froze the container: thawed first
 * plus the worker's own account of the thaw (Server-Timing thaw;dur).
 */
import { engineEnv } from '../cli/engine-env.js';
import { stopWorker } from './worker.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startRedisServer } from '../cli/redis.js';
import { startWorker } from '../worker/main.js';
import { startGateway } from '../gateway/main.js';
import { DEFAULT_FREEZE_GRACE_MS } from '../worker/pool/pool.js';
import { median, percentile, round } from './stats.js';
import { closeIdle, post } from './http.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { n: { type: 'string', default: '50' }, idle: { type: 'string', default: '300' } } });
  const n = Number(values.n);
  const idleMs = Number(values.idle);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a whole number >= 1, not ${JSON.stringify(values.n)}`);
  if (!(idleMs > DEFAULT_FREEZE_GRACE_MS)) throw new Error(`--idle must exceed the freeze grace (${DEFAULT_FREEZE_GRACE_MS} ms)`);
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-bench-thaw-'));
  const cleanup: (() => Promise<unknown>)[] = [];
  const stop = stopWorker;
  try {
    const redis = await startRedisServer({ dir: path.join(work, 'redis') });
    cleanup.push(() => redis.stop(false));
    const apiKey = 'bench-key-0123456789abcdef';
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    const stack = async (prefix: string, freezeGraceMs: number) => {
      const worker = await startWorker({ redisUrl: redis.url, engine: engineEnv(), prefix, stateDir: path.join(work, prefix), budgetMb: 1024, pools: true, freezeGraceMs, cgroupRoot: `/faasbox-bench-${prefix}-${process.pid}` });
      cleanup.push(stop(worker));
      const gw = await startGateway({ apiKey, redisUrl: redis.url, prefix, port: 0 });
      cleanup.push(() => gw.close());
      const r = await fetch(`${gw.url}/v1/functions/w`, { method: 'PUT', headers, body: JSON.stringify({ runtime: 'nodejs20', code: 'export default async () => 1' }) });
      if (!r.ok) throw new Error(`deploy: ${r.status} ${await r.text()}`);
      return { worker, url: gw.url };
    };
    process.stderr.write('bench thaw: starting two stacks (freezing on, freezing off)...\n');
    const on = await stack('freeze', DEFAULT_FREEZE_GRACE_MS);
    const off = await stack('nofreeze', 0);
    const thaw: number[] = [];
    const thawed: number[] = [];
    /** Back-to-back calls that found their container frozen all the same (a gap beyond the grace on a busy machine). */
    let warmThawed = 0;
    /** wantThaw undefined: either is fine (counted). */
    const invoke = async (url: string, wantThaw: boolean | undefined): Promise<number> => {
      const t = performance.now();
      const r = await post(`${url}/v1/functions/w/invoke`, headers, '{}');
      const ms = performance.now() - t;
      if (r.status !== 200) throw new Error(`invoke: ${r.status} ${r.body}`);
      const timing = String(r.headers['server-timing'] ?? '');
      const m = /thaw;dur=([\d.]+)/.exec(timing);
      if (wantThaw === undefined && m) warmThawed++;
      else if (wantThaw !== undefined && !!m !== wantThaw) throw new Error(`expected ${wantThaw ? 'a' : 'no'} thaw: ${timing}`);
      if (m && wantThaw) thaw.push(Number(m[1]));
      return ms;
    };
    // Each stack's container made warm, and the process's JIT warmed up on every path.
    for (let i = 0; i < 20; i++) await invoke(off.url, false);
    warmThawed = 0;
    for (let i = 0; i < 20; i++) await invoke(on.url, undefined);
    const frozen = () => on.worker.engine.list().some((s) => s.status === 'frozen');
    const warm: number[] = [];
    const idle: number[] = [];
    thaw.length = 0;
    process.stderr.write(`bench thaw: ${n} rounds (idle pause ${idleMs} ms)...\n`);
    for (let i = 0; i < n; i++) {
      warm.push(await invoke(on.url, undefined));
      await sleep(idleMs);
      idle.push(await invoke(off.url, false));
      if (!frozen()) throw new Error('the idle container of the freezing stack is not frozen');
      thawed.push(await invoke(on.url, true));
    }
    const row = (name: string, s: number[]) => ({ name, p50: round(median(s), 3), p90: round(percentile(s, 90), 3) });
    const rows = [row('warm (back to back)', warm), row(`idle ${idleMs} ms, no freezing`, idle), row(`idle ${idleMs} ms, thawed`, thawed), row('thaw phase (Server-Timing)', thaw)];
    console.log('ms                                 p50      p90');
    for (const r of rows) console.log(`${r.name.padEnd(32)} ${String(r.p50).padStart(7)}  ${String(r.p90).padStart(7)}`);
    console.log(`back-to-back calls that found their container frozen: ${warmThawed} of ${n}`);
    console.log(JSON.stringify({ bench: 'thaw', n, idleMs, graceMs: DEFAULT_FREEZE_GRACE_MS, rows, warmThawed }));
  } finally {
    closeIdle();
    for (const c of cleanup.reverse()) await c().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}
