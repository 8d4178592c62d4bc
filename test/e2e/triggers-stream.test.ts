/**
 * Stream triggers end to end, with a real producer (XADD from ioredis): an entry is
 * XACKed only once its invocation is final; a dead consumer's pending entries are
 * reclaimed with XAUTOCLAIM after the idle time; batches with partial failures; a stream
 * deleted under the trigger is made again and read from its start.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { startScheduler, type RunningScheduler } from '../../scheduler/main.js';
import { InvocationStore, type InvocationRecord } from '../../common/invocations.js';

let s: TestStack;
let sched: RunningScheduler;
let redis: Redis;
let store: InvocationStore;

before(async () => {
  s = await startStack('trs');
  redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
  store = new InvocationStore(redis, s.prefix);
  sched = await startScheduler({ redisUrl: s.redis.url, prefix: s.prefix, intervalMs: 200, triggers: { lagEveryMs: 200, maxEventBytes: 65_536 } });
  for (const [name, code] of [
    ['sink', 'export default async (event) => { await new Promise((r) => setTimeout(r, Number(event.fields.sleep ?? 0))); return event; }'],
    ['picky', 'export default async (items) => ({ seen: items.map((i) => i.id), batchItemFailures: items.filter((i) => i.fields.bad).map((i) => ({ itemIdentifier: i.id })) })'],
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

async function records(fn: string): Promise<InvocationRecord[]> {
  const out: InvocationRecord[] = [];
  for (const id of await store.idsOf(fn)) {
    const r = await store.get(id);
    if (r) out.push(r);
  }
  return out;
}

const pendingCount = async (stream: string, group: string) => Number(((await redis.xpending(stream, group)) as [number])[0]);
const entryOf = (r: InvocationRecord) => (r.result as { id?: string } | undefined)?.id;

test('each entry is invoked with {id, fields}, and XACKed only once its invocation is final', async () => {
  // Written before the trigger exists: the group starts at the stream's beginning.
  const early = await redis.xadd('ev', '*', 'n', '0', 'sleep', '0');
  const put = await api('PUT', '/v1/triggers/ev', { function: 'sink', source: { kind: 'stream', stream: 'ev', group: 'faasbox' }, concurrency: 2 });
  assert.equal(put.status, 201, JSON.stringify(put.json));
  const slow = await redis.xadd('ev', '*', 'n', '1', 'sleep', '1500');
  // While the slow one runs, its entry is delivered and not acknowledged.
  await eventually(async () => (await records('sink')).some((r) => r.status === 'running'), 15_000, 'the slow entry to run');
  assert.ok((await pendingCount('ev', 'faasbox')) >= 1, 'a running entry stays pending');
  const ids = [early!, slow!];
  for (let n = 2; n < 6; n++) ids.push((await redis.xadd('ev', '*', 'n', String(n)))!);
  await eventually(async () => (await records('sink')).filter((r) => r.status === 'succeeded').length === 6, 20_000, 'all 6 entries to run');
  await eventually(async () => (await pendingCount('ev', 'faasbox')) === 0, 5000, 'every entry to be acknowledged');
  const byEntry = new Map((await records('sink')).map((r) => [entryOf(r), r.result as { id: string; fields: Record<string, string> }]));
  assert.deepEqual([...byEntry.keys()].sort(), [...ids].sort());
  assert.deepEqual(byEntry.get(slow!)?.fields, { n: '1', sleep: '1500' });
  await eventually(async () => (await api('GET', '/v1/triggers/ev')).json.state.lag === 0, 5000, 'lag 0');
  await api('DELETE', '/v1/triggers/ev');
});

test('a dead consumer\'s pending entries are reclaimed after the idle time and run', async () => {
  await redis.xgroup('CREATE', 'orphans', 'g', '0', 'MKSTREAM');
  const a = await redis.xadd('orphans', '*', 'who', 'ghost-1');
  const b = await redis.xadd('orphans', '*', 'who', 'ghost-2');
  // A consumer that read both and died before acknowledging them.
  await redis.xreadgroup('GROUP', 'g', 'ghost', 'COUNT', 10, 'STREAMS', 'orphans', '>');
  const put = await api('PUT', '/v1/triggers/orphans', { function: 'sink', source: { kind: 'stream', stream: 'orphans', group: 'g', reclaimIdleMs: 1500 } });
  assert.equal(put.status, 201, JSON.stringify(put.json));
  await eventually(async () => {
    const seen = (await records('sink')).map(entryOf);
    return seen.includes(a!) && seen.includes(b!);
  }, 20_000, 'the ghost\'s entries to be reclaimed and run');
  await eventually(async () => (await pendingCount('orphans', 'g')) === 0, 5000, 'the reclaimed entries to be acknowledged');
  await api('DELETE', '/v1/triggers/orphans');
});

test('a batch of entries: only the reported failures are invoked again, then acknowledged', async () => {
  await api('PUT', '/v1/triggers/picky', { function: 'picky', source: { kind: 'stream', stream: 'pk', group: 'g' }, batchSize: 3, batchWindowMs: 3000, retry: { maxAttempts: 2, backoff: { type: 'fixed', delayMs: 50, jitter: false } } });
  const ids: string[] = [];
  for (const bad of ['', '1', '']) ids.push(bad ? (await redis.xadd('pk', '*', 'bad', bad))! : (await redis.xadd('pk', '*', 'ok', '1'))!);
  await eventually(async () => (await records('picky')).filter((r) => r.status === 'succeeded').length === 2, 20_000, 'the batch and its retry');
  const seen = (await records('picky')).map((r) => (r.result as { seen: string[] }).seen).sort((x, y) => y.length - x.length);
  assert.deepEqual(seen, [ids, [ids[1]]]);
  await eventually(async () => (await pendingCount('pk', 'g')) === 0, 5000, 'all three acknowledged (the failed one after its last attempt)');
  await eventually(async () => (await api('GET', '/v1/triggers/picky')).json.state.failed === 1, 5000, 'one item counted failed');
  const dls = (await api('GET', '/v1/functions/picky/dead-letters')).json.deadLetters as { reason: string; attempts: number; event: unknown; source: { entryId: string } }[];
  const mine = dls.filter((e) => e.reason === 'batch-item-failed');
  assert.equal(mine.length, 1, JSON.stringify(dls));
  assert.equal(mine[0]!.source.entryId, ids[1]);
  assert.equal(mine[0]!.attempts, 2);
  assert.deepEqual(mine[0]!.event, [{ id: ids[1], fields: { bad: '1' } }]);
  await api('DELETE', '/v1/triggers/picky');
});

test('a stream deleted under its trigger: the error shows, the group is made again, new entries run', async () => {
  await api('PUT', '/v1/triggers/fragile', { function: 'sink', source: { kind: 'stream', stream: 'fragile', group: 'g' } });
  const first = await redis.xadd('fragile', '*', 'n', '1');
  await eventually(async () => (await records('sink')).some((r) => entryOf(r) === first), 15_000, 'the first entry');
  await redis.del('fragile');
  await eventually(async () => /NOGROUP/.test((await api('GET', '/v1/triggers/fragile')).json.state.lastError?.message ?? ''), 10_000, 'the NOGROUP error in the state');
  await eventually(async () => (await redis.exists('fragile')) === 1, 10_000, 'the stream made again with its group');
  const second = await redis.xadd('fragile', '*', 'n', '2');
  await eventually(async () => (await records('sink')).some((r) => entryOf(r) === second), 15_000, 'an entry of the new stream');
  await api('DELETE', '/v1/triggers/fragile');
});

test('a paused stream trigger reads nothing; resumed, it reads what was written meanwhile', async () => {
  await api('PUT', '/v1/triggers/calm', { function: 'sink', source: { kind: 'stream', stream: 'calm', group: 'g' } });
  const first = await redis.xadd('calm', '*', 'n', '1');
  await eventually(async () => (await records('sink')).some((r) => entryOf(r) === first), 15_000, 'the first entry');
  await api('POST', '/v1/triggers/calm/pause');
  await new Promise((r) => setTimeout(r, 1500)); // a read in progress ends (it blocks 1 s at most)
  const held = [(await redis.xadd('calm', '*', 'n', '2'))!, (await redis.xadd('calm', '*', 'n', '3'))!];
  await new Promise((r) => setTimeout(r, 2000));
  const seen = async () => (await records('sink')).map(entryOf);
  for (const id of held) assert.ok(!(await seen()).includes(id), 'nothing is read while paused');
  assert.equal(await pendingCount('calm', 'g'), 0, 'nor delivered');
  await eventually(async () => (await api('GET', '/v1/triggers/calm')).json.state.lag === 2, 5000, 'the lag to show the 2 entries');
  await api('POST', '/v1/triggers/calm/resume');
  await eventually(async () => (await seen()).filter((id) => held.includes(id!)).length === 2, 15_000, 'the held entries after resume');
  await api('DELETE', '/v1/triggers/calm');
});

test('an entry an invocation cannot take goes to the dead letters with its reason and is acknowledged; later entries run', async () => {
  await api('PUT', '/v1/triggers/huge', { function: 'sink', source: { kind: 'stream', stream: 'huge', group: 'g' } });
  const big = (await redis.xadd('huge', '*', 'blob', 'x'.repeat(100_000)))!;
  const small = (await redis.xadd('huge', '*', 'n', '1'))!;
  await eventually(async () => (await records('sink')).some((r) => r.status === 'succeeded' && entryOf(r) === small), 20_000, 'the entry after it to run');
  await eventually(async () => (await pendingCount('huge', 'g')) === 0, 5000, 'both entries acknowledged');
  const page = await api('GET', '/v1/functions/sink/dead-letters');
  const dl = page.json.deadLetters.find((e: any) => e.source.kind === 'stream' && e.source.entryId === big);
  assert.ok(dl, JSON.stringify(page.json));
  assert.deepEqual(dl.source, { kind: 'stream', trigger: 'huge', stream: 'huge', entryId: big });
  assert.equal(dl.reason, 'event-rejected');
  assert.equal(dl.error.code, 'VALIDATION_FAILED');
  assert.match(dl.error.message, /more than the 65536 an invocation accepts/);
  assert.ok(!(await records('sink')).some((r) => entryOf(r) === big), 'the big entry was never invoked');
  await eventually(async () => (await api('GET', '/v1/triggers/huge')).json.state.rejected === 1, 5000, 'the rejection in the state');
  await api('DELETE', '/v1/triggers/huge');
});
