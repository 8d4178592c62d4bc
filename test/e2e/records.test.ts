/**
 * "Asynchronous records tell the truth": thousands of sequential async invocations of a
 * no-op function through the real stack (gateway, BullMQ on a real redis-server, worker,
 * containers) all end in a final status with their result, and `attempts` equal to the
 * number of times BullMQ handed the job to a worker; the same across a gateway restart and
 * across a restart of the test's own redis-server (by its pid, on the same data dir and
 * AOF). Before the records moved only forward, 26 of 2,000 ended `queued` with a result
 * and a finish time, 55 around a Redis reconnect, and 1.7-23% showed `attempts: 0`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { eventually } from '../support/stack.js';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { startWorker, type RunningWorker } from '../../worker/main.js';
import { InvocationStore, type InvocationRecord } from '../../common/invocations.js';
import { INVOCATION_QUEUE } from '../../common/queue.js';
import { mountsUnder } from '../../worker/runtime/mounts.js';

const KEY = 'records-test-key-0123456789abcdef';
const prefix = `records${process.pid}`;
/** Invocations per scenario, and the time the loop of one may take (it stops early, and says so). */
const N = 2000;
const LOOP_MS = 240_000;
// Finished jobs are kept so that each record's attempts can be checked against BullMQ's count.
const limits = { completedJobsKept: 3 * N, recordsPerFunction: 3 * N };

let redis: TestRedis;
let client: Redis;
let worker: RunningWorker;
let gateway: RunningGateway;
let work: string;

const startOurGateway = () => startGateway({ apiKey: KEY, redisUrl: redis.url, prefix, port: 0, limits });

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-records-'));
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  worker = await startWorker({ redisUrl: redis.url, prefix, stateDir: path.join(work, 'state'), budgetMb: 1024, pools: true, cgroupRoot: `/faasbox-test-records-${process.pid}`, limits });
  gateway = await startOurGateway();
});

after(async () => {
  await gateway?.close();
  await worker?.close();
  const report = await worker?.engine.gc({ all: true });
  worker?.engine.cgroups.removeRoot();
  client?.disconnect();
  await redis?.stop();
  const left = work ? mountsUnder(work) : [];
  if (work) rmSync(work, { recursive: true, force: true });
  assert.deepEqual(report?.containers ?? [], [], 'containers left behind');
  assert.deepEqual(left, [], 'mounts left behind');
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
