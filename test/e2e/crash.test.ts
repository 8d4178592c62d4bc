/**
 * "A 202 means the invocation survives a worker crash": a worker process is SIGKILLed
 * while it runs an async invocation. Its containers die with it (nothing of theirs keeps
 * running), another worker takes the invocation back once the lock lapses and runs it to
 * the end (attempt 2), and a worker starting on the dead one's state dir removes what it
 * left: mounts and cgroups.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type TestRedis } from '../support/redis.js';
import { eventually } from '../support/eventually.js';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { startWorker, type RunningWorker, type WorkerConfig } from '../../worker/main.js';
import { Engine } from '../../worker/engine/engine.js';
import { mountsUnder } from '../../worker/engine/mounts.js';
import { detectCgroupDriver } from '../../worker/engine/cgroups/index.js';

const KEY = 'crash-test-key-0123456789abcdef';
const workerModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../worker/main.js');

let redis: TestRedis;
let gateway: RunningGateway;
let work: string;
const prefix = `crash${process.pid}`;
const rootA = `/faasbox-test-crash-a-${process.pid}`;
const rootB = `/faasbox-test-crash-b-${process.pid}`;

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-crash-'));
  redis = await startRedis();
  gateway = await startGateway({ apiKey: KEY, redisUrl: redis.url, prefix, port: 0 });
});

after(async () => {
  await gateway.close();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A worker in a process of its own, so that it can really crash. */
async function workerProcess(cfg: WorkerConfig): Promise<ChildProcess> {
  const script = `const { startWorker } = await import(process.argv[1]); await startWorker(JSON.parse(process.argv[2])); process.stdout.write('ready\\n'); setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, workerModule, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`worker process exited with ${code} before it was ready`)));
  });
  return child;
}

/** Processes in the cgroups under a cgroup root. */
function pidsUnder(root: string): number[] {
  const cgroups = detectCgroupDriver({ root });
  return cgroups.list().flatMap((name) => cgroups.open(name)?.pids() ?? []);
}

async function api(method: string, p: string, body?: unknown) {
  const r = await fetch(`${gateway.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, headers: r.headers, json: (await r.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

test('an async invocation running on a worker that is SIGKILLed completes on another worker', { timeout: 120_000 }, async () => {
  const stateA = path.join(work, 'a');
  const stateB = path.join(work, 'b');
  const common = { redisUrl: redis.url, prefix, budgetMb: 1024, pools: true, lockMs: 2000 };
  const a = await workerProcess({ ...common, stateDir: stateA, cgroupRoot: rootA });
  let b: RunningWorker | undefined;
  try {
    const d = await api('PUT', '/v1/functions/slow', {
      runtime: 'nodejs20',
      code: 'export default async (e) => { await new Promise((r) => setTimeout(r, e.ms)); return { done: e.n }; }',
      timeoutMs: 30_000,
    });
    assert.ok(d.status === 201 || d.status === 200, JSON.stringify(d.json));
    const r = await api('POST', '/v1/functions/slow/invoke?async=true', { ms: 3000, n: 7 });
    assert.equal(r.status, 202);
    const loc = r.headers.get('location')!;
    await eventually(async () => (await api('GET', loc)).json.status === 'running', 30_000, 'worker A to start the invocation');
    assert.ok(pidsUnder(rootA).length > 0, 'worker A runs containers');

    a.kill('SIGKILL');
    await new Promise((resolve) => a.once('exit', resolve));
    // Its fork server dies with it and takes every container along.
    await eventually(() => pidsUnder(rootA).length === 0, 10_000, "worker A's containers to die with it");

    b = await startWorker({ ...common, stateDir: stateB, cgroupRoot: rootB });
    let rec: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    await eventually(async () => {
      rec = (await api('GET', loc)).json;
      return rec.status === 'succeeded' || rec.status === 'failed';
    }, 60_000, 'the invocation to finish on worker B');
    assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
    assert.deepEqual(rec.result, { done: 7 });
    assert.equal(rec.attempts, 2);
  } finally {
    if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
    if (b) {
      await b.close();
      await b.engine.gc({ all: true });
      b.engine.cgroups.removeRoot();
    }
    // What the dead worker left behind is found and removed by the next one on its state dir.
    const engine = await Engine.open({ stateDir: stateA, cgroupRoot: rootA });
    const left = await engine.gc();
    await engine.close();
    engine.cgroups.removeRoot();
    assert.deepEqual(mountsUnder(stateA), []);
    assert.ok(left.containers.length > 0, 'the crashed worker had left containers to collect');
  }
});
