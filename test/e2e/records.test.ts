/**
 * "Asynchronous records tell the truth": thousands of sequential async invocations of a
 * no-op function through the real stack (gateway, BullMQ on a real redis-server, a worker
 * in a process of its own as the services run, containers) all end in a final status with their result, and `attempts` equal to the
 * number of times BullMQ handed the job to a worker; the same across a gateway restart and
 * across a restart of the test's own redis-server (by its pid, on the same data dir and
 * AOF). Before the records moved only forward, 26 of 2,000 ended `queued` with a result
 * and a finish time, 55 around a Redis reconnect, and 1.7-23% showed `attempts: 0`. The
 * worker must be another process for the race to happen at all: in the gateway's process
 * the gateway's record write always left before the worker could see the job.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { eventually } from '../support/eventually.js';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { type WorkerConfig } from '../../worker/main.js';
import { Engine } from '../../worker/engine/engine.js';
import { InvocationStore, type InvocationRecord } from '../../common/invocations.js';
import { INVOCATION_QUEUE } from '../../common/queue.js';
import { mountsUnder } from '../../worker/engine/mounts.js';

const KEY = 'records-test-key-0123456789abcdef';
const prefix = `records${process.pid}`;
/** Invocations per scenario, and the time the loop of one may take (it stops early, and says so). */
const N = 2000;
const LOOP_MS = 240_000;
// Finished jobs are kept so that each record's attempts can be checked against BullMQ's count.
const limits = { completedJobsKept: 3 * N, recordsPerFunction: 3 * N };

let redis: TestRedis;
let client: Redis;
let worker: ChildProcess;
let gateway: RunningGateway;
let work: string;

const workerModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../worker/main.js');
const cgroupRoot = `/faasbox-test-records-${process.pid}`;

/** The worker in a process of its own; SIGTERM closes it (containers included) and ends it. */
async function workerProcess(cfg: WorkerConfig): Promise<ChildProcess> {
  const script = `const { startWorker } = await import(process.argv[1]); const w = await startWorker(JSON.parse(process.argv[2])); process.on('SIGTERM', () => w.close().then(() => process.exit(0), () => process.exit(1))); process.stdout.write('ready\\n'); setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, workerModule, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`worker process exited with ${code} before it was ready`)));
  });
  return child;
}

const startOurGateway = () => startGateway({ apiKey: KEY, redisUrl: redis.url, prefix, port: 0, limits });

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-records-'));
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  client.on('error', () => {}); // while the test restarts Redis; commands wait for the reconnect
  worker = await workerProcess({ redisUrl: redis.url, prefix, stateDir: path.join(work, 'state'), budgetMb: 1024, pools: true, cgroupRoot, limits });
  gateway = await startOurGateway();
});

after(async () => {
  await gateway?.close();
  if (worker && worker.exitCode === null && worker.signalCode === null) {
    const exited = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    await exited;
  }
  // Anything the worker process left (it should leave nothing) is found on its state dir.
  const engine = work ? await Engine.open({ stateDir: path.join(work, 'state'), cgroupRoot }) : undefined;
  const report = await engine?.gc({ all: true });
  await engine?.close();
  engine?.cgroups.removeRoot();
  client?.disconnect();
  await redis?.stop();
  const left = work ? mountsUnder(work) : [];
  if (work) rmSync(work, { recursive: true, force: true });
  assert.deepEqual(report?.containers ?? [], [], 'containers left behind');
  assert.deepEqual(left, [], 'mounts left behind');
  assert.equal(worker?.exitCode, 0, 'the worker process closed cleanly');
});

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(`${gateway.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : undefined };
}

/**
 * N sequential async invocations of `fn`; `midway` runs once, half-way. Returns the ids
 * answered 202 (a request refused while something restarts is retried, not counted).
 */
async function invokeMany(fn: string, midway?: () => Promise<void>): Promise<string[]> {
  const ids: string[] = [];
  const end = Date.now() + LOOP_MS;
  let refused = 0;
  for (let n = 0; ids.length < N && Date.now() < end; n++) {
    if (midway && ids.length === N / 2 && n >= N / 2) {
      await midway();
      midway = undefined;
    }
    try {
      const r = await api('POST', `/v1/functions/${fn}/invoke?async=true`, { n });
      if (r.status === 202) ids.push(r.json.invocationId);
      else refused++;
    } catch {
      refused++; // the gateway's socket went away mid-restart
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  console.log(`# ${fn}: ${ids.length} invocations accepted in the loop, ${refused} refused meanwhile`);
  return ids;
}

/** Waits (bounded) for every record to be final, then checks each against its BullMQ job. */
async function checkRecords(ids: string[]): Promise<void> {
  const store = new InvocationStore(client, prefix);
  let records: (InvocationRecord | undefined)[] = [];
  const final = (r: InvocationRecord | undefined) => r?.status === 'succeeded' || r?.status === 'failed';
  await eventually(
    async () => {
      records = await Promise.all(ids.map((id) => store.get(id)));
      return records.every(final);
    },
    180_000,
    'every record to reach a final status',
  ).catch(() => {}); // the assertions below say what is wrong
  const notFinal = records.filter((r) => !final(r)).map((r) => `${r?.id}:${r?.status}:${r?.finishedAt ?? '-'}`);
  assert.deepEqual(notFinal, [], `${notFinal.length} of ${ids.length} records are not final`);
  const failed = records.filter((r) => r!.status !== 'succeeded').map((r) => `${r!.id}:${r!.error?.code}`);
  assert.deepEqual(failed, [], 'every no-op invocation succeeded');
  const pipe = client.pipeline();
  for (const id of ids) pipe.hget(`${prefix}:${INVOCATION_QUEUE}:${id}`, 'ats');
  const started = ((await pipe.exec()) ?? []).map(([err, v]) => (err ? NaN : Number(v)));
  const wrong = records.flatMap((r, i) => (r!.attempts === started[i] && r!.attempts >= 1 ? [] : [`${r!.id}: attempts ${r!.attempts}, BullMQ started it ${started[i]} times`]));
  assert.deepEqual(wrong, [], `${wrong.length} records have inexact attempts`);
  const retried = records.filter((r) => r!.attempts > 1).length;
  console.log(`# ${ids.length} records final; ${retried} were started more than once (BullMQ agrees)`);
}

test('sequential async invocations all end final, with exact attempts', { timeout: 600_000 }, async () => {
  const d = await api('PUT', '/v1/functions/noop', { runtime: 'nodejs20', code: 'export default async (e) => e.n' });
  assert.equal(d.status, 201, JSON.stringify(d.json));
  await checkRecords(await invokeMany('noop'));
});

test('the same across a gateway restart', { timeout: 600_000 }, async () => {
  await checkRecords(
    await invokeMany('noop', async () => {
      await gateway.close();
      gateway = await startOurGateway();
    }),
  );
});

test("the same across a restart of Redis (SIGTERM to its pid, same data dir and AOF)", { timeout: 600_000 }, async () => {
  const pid = redis.pid;
  await checkRecords(
    await invokeMany('noop', async () => {
      await redis.restart();
      assert.notEqual(redis.pid, pid, 'a new redis-server process');
    }),
  );
});
