/**
 * Cron triggers end to end, on real timing with a seconds field: the event carries the
 * scheduled time; two runners on the same triggers fire each tick once (the tick lock);
 * overlap "skip" runs nothing while the last run is in flight; after downtime one
 * catch-up run is made only when asked; a paused trigger fires nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { startScheduler, type RunningScheduler } from '../../scheduler/main.js';
import { TriggerRunner } from '../../scheduler/triggers/runner.js';
import { InvocationStore, type InvocationRecord } from '../../common/invocations.js';
import { TriggerStore, triggerCronKey } from '../../common/triggers.js';
import { DEFAULT_STORAGE_LIMITS } from '../../common/limits.js';

let s: TestStack;
let sched: RunningScheduler;
let redis: Redis;
let store: InvocationStore;

before(async () => {
  s = await startStack('trc');
  redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  store = new InvocationStore(redis, s.prefix);
  sched = await startScheduler({ redisUrl: s.redis.url, prefix: s.prefix, intervalMs: 200 });
  for (const [name, code] of [
    ['tick', 'export default async (event) => event'],
    ['slow', 'export default async (event) => { await new Promise((r) => setTimeout(r, 2500)); return event; }'],
  ]) {
    const d = await s.deploy(name!, { runtime: 'nodejs20', code });
    assert.equal(d.status, 201, d.text);
  }
});
after(async () => {
  await sched.close();
  redis.disconnect();
  await s.close();
});

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${s.url}${p}`, { method, headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: r.status, json: await r.json() };
}

type Tick = { trigger: string; scheduledAt: string; scheduledAtMs: number };

async function ticks(fn: string, trigger: string): Promise<{ rec: InvocationRecord; ev: Tick }[]> {
  const out: { rec: InvocationRecord; ev: Tick }[] = [];
  for (const id of await store.idsOf(fn)) {
    const rec = await store.get(id);
    const ev = rec?.result as Tick | undefined;
    if (rec && ev?.trigger === trigger) out.push({ rec, ev });
  }
  return out.sort((a, b) => a.ev.scheduledAtMs - b.ev.scheduledAtMs);
}

test('every tick fires once, with its scheduled time, even with a second runner on the same triggers', async () => {
  // A second runner beside the leader's, as two schedulers would be in a hand-over.
  const second = await TriggerRunner.start(redis, {
    redisUrl: s.redis.url, prefix: s.prefix, maxEventBytes: 1 << 20, maxJsonDepth: 64, maxEventAgeMs: 60_000, queuedBytesPerFunction: DEFAULT_STORAGE_LIMITS.queuedBytesPerFunction,
  });
  try {
    const put = await api('PUT', '/v1/triggers/every-second', { function: 'tick', source: { kind: 'cron', schedule: '* * * * * *', overlap: 'allow' } });
    assert.equal(put.status, 201, JSON.stringify(put.json));
    await eventually(() => second.names.includes('every-second'), 5000, 'the second runner to pick the trigger up');
    await eventually(async () => (await ticks('tick', 'every-second')).filter((t) => t.rec.status === 'succeeded').length >= 5, 30_000, '5 ticks');
    await api('DELETE', '/v1/triggers/every-second');
    await new Promise((r) => setTimeout(r, 1500)); // what was in flight lands
    const all = await ticks('tick', 'every-second');
    const times = all.map((t) => t.ev.scheduledAtMs);
    assert.equal(new Set(times).size, times.length, `a tick fired twice: ${all.map((t) => t.ev.scheduledAt).join(', ')}`);
    for (const t of times) assert.equal(t % 1000, 0, 'ticks are on whole seconds');
    for (let i = 1; i < times.length; i++) assert.equal(times[i]! - times[i - 1]!, 1000, `no tick is missed: ${all.map((t) => t.ev.scheduledAt).join(', ')}`);
    for (const { rec, ev } of all) {
      assert.equal(ev.scheduledAt, new Date(ev.scheduledAtMs).toISOString());
      assert.ok(Date.parse(rec.createdAt) >= ev.scheduledAtMs, 'never before its time');
    }
    const delays = all.map(({ rec, ev }) => Date.parse(rec.createdAt) - ev.scheduledAtMs);
    console.log(`# cron: ${all.length} ticks, submitted ${Math.min(...delays)}..${Math.max(...delays)} ms after their scheduled time`);
  } finally {
    await second.close();
  }
});

test('overlap skip: no run starts while the last is in flight', async () => {
  await api('PUT', '/v1/triggers/no-overlap', { function: 'slow', source: { kind: 'cron', schedule: '* * * * * *' } });
  await eventually(async () => (await ticks('slow', 'no-overlap')).filter((t) => t.rec.status === 'succeeded').length >= 2, 30_000, '2 slow runs');
  await api('DELETE', '/v1/triggers/no-overlap');
  await new Promise((r) => setTimeout(r, 3000));
  const runs = (await ticks('slow', 'no-overlap')).filter((t) => t.rec.status === 'succeeded');
  for (let i = 1; i < runs.length; i++) {
    assert.ok(Date.parse(runs[i]!.rec.createdAt) >= Date.parse(runs[i - 1]!.rec.finishedAt!), 'a run was submitted before the previous one finished');
    assert.ok(runs[i]!.ev.scheduledAtMs - runs[i - 1]!.ev.scheduledAtMs >= 2000, 'the ticks during a run were skipped');
  }
});

test('after downtime: catchUp makes one run for the last missed tick; without it, none', async () => {
  const triggers = new TriggerStore(redis, s.prefix);
  const hour = 3600_000;
  // As if a scheduler had last fired these hourly triggers three hours ago.
  for (const name of ['catch-up', 'no-catch-up']) await redis.set(triggerCronKey(s.prefix, name), String(Math.floor(Date.now() / hour) * hour - 3 * hour));
  await triggers.put('catch-up', { function: 'tick', source: { kind: 'cron', schedule: '@every 1h', timezone: 'UTC', overlap: 'skip', catchUp: true }, concurrency: 1 });
  await triggers.put('no-catch-up', { function: 'tick', source: { kind: 'cron', schedule: '@every 1h', timezone: 'UTC', overlap: 'skip', catchUp: false }, concurrency: 1 });
  await eventually(async () => (await ticks('tick', 'catch-up')).some((t) => t.rec.status === 'succeeded'), 20_000, 'the catch-up run');
  await new Promise((r) => setTimeout(r, 1500));
  const caught = await ticks('tick', 'catch-up');
  assert.equal(caught.length, 1, 'one catch-up run, not one per missed tick');
  assert.equal(caught[0]!.ev.scheduledAtMs, Math.floor(Date.now() / hour) * hour, 'for the latest missed tick');
  assert.equal((await ticks('tick', 'no-catch-up')).length, 0);
  await triggers.delete('catch-up');
  await triggers.delete('no-catch-up');
});

test('a paused cron trigger fires nothing; resumed, it fires again', async () => {
  await api('PUT', '/v1/triggers/pausable', { function: 'tick', source: { kind: 'cron', schedule: '* * * * * *', overlap: 'allow' } });
  await eventually(async () => (await ticks('tick', 'pausable')).length >= 1, 20_000, 'a first tick');
  await api('POST', '/v1/triggers/pausable/pause');
  await new Promise((r) => setTimeout(r, 1200));
  const atPause = (await ticks('tick', 'pausable')).length;
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal((await ticks('tick', 'pausable')).length, atPause, 'no tick while paused');
  await api('POST', '/v1/triggers/pausable/resume');
  await eventually(async () => (await ticks('tick', 'pausable')).length > atPause, 10_000, 'ticks after resume');
  const st = (await api('GET', '/v1/triggers/pausable')).json.state;
  assert.ok(st.lastScheduledAt && st.lastFireAt, JSON.stringify(st));
  await api('DELETE', '/v1/triggers/pausable');
});
