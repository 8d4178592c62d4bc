/**
 * The scheduler's periodic work survives its death: two `faasbox scheduler` processes,
 * as two replicas run; the leader (holder of the lease) is SIGKILLed by its pid, the
 * other takes the lease over, and a cron trigger keeps firing, each tick once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { leaderKey } from '../../scheduler/leader.js';
import { InvocationStore } from '../../common/invocations.js';
import { TriggerStore } from '../../common/triggers.js';
import { stopChild } from '../../cli/redis.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
let s: TestStack;
let redis: Redis;
let work: string;
const schedulers: ChildProcess[] = [];

function startSchedulerProcess(): ChildProcess {
  const child = spawn(process.execPath, [path.join(repo, 'bin/faasbox.js'), 'scheduler'], {
    env: { ...process.env, FAASBOX_REDIS_URL: s.redis.url, FAASBOX_PREFIX: s.prefix, FAASBOX_STATE_DIR: work },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`# scheduler ${child.pid}: ${d}`));
  schedulers.push(child);
  return child;
}

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-leader-'));
  s = await startStack('trl');
  redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  const d = await s.deploy('tick', { runtime: 'nodejs20', code: 'export default async (event) => event' });
  assert.equal(d.status, 201, d.text);
});
after(async () => {
  for (const child of schedulers) if (child.exitCode === null && child.signalCode === null) await stopChild(child, 'SIGTERM');
  redis.disconnect();
  await s.close();
  rmSync(work, { recursive: true, force: true });
});

const leaderPid = async () => {
  const holder = await redis.get(leaderKey(s.prefix));
  return holder ? Number(holder.split(':')[1]) : undefined;
};

async function firedTicks(): Promise<number[]> {
  const store = new InvocationStore(redis, s.prefix);
  const out: number[] = [];
  for (const id of await store.idsOf('tick')) {
    const rec = await store.get(id);
    if (rec?.status === 'succeeded') out.push((rec.result as { scheduledAtMs: number }).scheduledAtMs);
  }
  return out.sort((a, b) => a - b);
}

test('SIGKILL of the leading scheduler: the other takes over and cron fires once per tick', async () => {
  const a = startSchedulerProcess();
  const b = startSchedulerProcess();
  await eventually(async () => [a.pid, b.pid].includes(await leaderPid()), 20_000, 'one scheduler to lead');
  await new TriggerStore(redis, s.prefix).put('beat', { function: 'tick', source: { kind: 'cron', schedule: '* * * * * *', timezone: 'UTC', overlap: 'allow', catchUp: false }, concurrency: 1 });
  await eventually(async () => (await firedTicks()).length >= 3, 30_000, '3 ticks under the first leader');
  const first = (await leaderPid())!;
  const survivor = first === a.pid ? b : a;
  process.kill(first, 'SIGKILL');
  const killedAt = Date.now();
  await eventually(async () => (await leaderPid()) === survivor.pid, 20_000, 'the survivor to take the lease');
  const tookOverMs = Date.now() - killedAt;
  await eventually(async () => (await firedTicks()).filter((t) => t > killedAt).length >= 3, 30_000, '3 ticks under the new leader');
  const ticks = await firedTicks();
  assert.equal(new Set(ticks).size, ticks.length, `a tick fired twice: ${ticks.join(', ')}`);
  const gap = Math.max(...ticks.slice(1).map((t, i) => t - ticks[i]!));
  console.log(`# leader ${first} killed; ${survivor.pid} led after ${tookOverMs} ms (lease 5000 ms); longest gap between ticks ${gap} ms; ${ticks.length} ticks`);
  await new TriggerStore(redis, s.prefix).delete('beat');
});
