/**
 * What callers can put in Redis is bounded, against a real redis-server: a function's
 * queued async bytes (429 QUEUE_FULL), its records (the oldest go), its versions (a deploy
 * prunes the oldest non-current ones), finished jobs by count; a job stores its body once;
 * and a Redis at its maxmemory (noeviction) is answered 503 STORAGE_FULL, with nothing
 * already accepted lost.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { INVOCATION_QUEUE } from '../../common/queue.js';
import { JOB_OVERHEAD_BYTES, QueuedBytes } from '../../common/queued-bytes.js';
import { redisClientForFile, startRedis, type TestRedis } from '../support/redis.js';
import { eventually } from '../support/eventually.js';
import { auth, NODE_CODE, testGateway, type TestGateway } from './harness.js';

let server: TestRedis;
let redis: Redis;
redisClientForFile((client, s) => {
  redis = client;
  server = s;
});

/** Opens a gateway for one test and closes it after, whatever happens. */
async function withGateway(overrides: Parameters<typeof testGateway>[1], body: (gw: TestGateway) => Promise<void>, on: TestRedis = server): Promise<void> {
  const gw = await testGateway(on, overrides);
  try {
    await body(gw);
  } finally {
    await gw.close();
  }
}

const asyncInvoke = (gw: TestGateway, fn: string, event: unknown) => gw.invoke(fn, event, { query: '?async=true' });
const memoryOf = async (key: string) => Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));

test('an async job stores its body once: its size in Redis is the body plus a small envelope', async () => {
  await withGateway({}, async (gw) => {
    await gw.deploy('store', { runtime: 'nodejs20', code: NODE_CODE });
    const event = { items: Array.from({ length: 20_000 }, (_, i) => ({ id: i, name: `item-${i}` })) };
    const sizes: string[] = [];
    for (const [what, text] of [['compact', JSON.stringify(event)], ['pretty-printed', JSON.stringify(event, null, 2)]] as const) {
      const res = await gw.app.request('/v1/functions/store/invoke?async=true', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: text });
      assert.equal(res.status, 202);
      const { invocationId } = (await res.json()) as { invocationId: string };
      const job = await memoryOf(`${gw.prefix}:${INVOCATION_QUEUE}:${invocationId}`);
      const body = Buffer.byteLength(text);
      sizes.push(`${what}: body ${body} B, job ${job} B (${(job / body).toFixed(2)}x)`);
      // Was 2.3x: the event and a base64 copy of the raw body. A pretty-printed body is kept
      // as its bytes: text (escaped once more inside the job) or base64, whichever is smaller.
      assert.ok(job < body * (what === 'compact' ? 1.1 : 1.4), sizes.at(-1));
    }
    // And a job with an empty body costs what the admission counts for it.
    const res = await gw.app.request('/v1/functions/store/invoke?async=true', { method: 'POST', headers: auth });
    const { invocationId } = (await res.json()) as { invocationId: string };
    const empty = (await memoryOf(`${gw.prefix}:${INVOCATION_QUEUE}:${invocationId}`)) + (await memoryOf(`${gw.prefix}:inv:${invocationId}`));
    sizes.push(`empty body: job + record ${empty} B (counted as ${JOB_OVERHEAD_BYTES})`);
    assert.ok(empty <= JOB_OVERHEAD_BYTES, sizes.at(-1));
    console.log(`# ${sizes.join('; ')}`);
  });
});

test("a function's queued async bytes are bounded: 429 QUEUE_FULL past them, room again once they ran", async () => {
  const room = 100 * 1024;
  await withGateway({ limits: { queuedBytesPerFunction: room } }, async (gw) => {
    await gw.deploy('bulky', { runtime: 'nodejs20', code: NODE_CODE });
    await gw.deploy('other', { runtime: 'nodejs20', code: NODE_CODE });
    const event = { behave: 'ok', pad: 'x'.repeat(30 * 1024) };
    for (let i = 0; i < 3; i++) assert.equal((await asyncInvoke(gw, 'bulky', event)).status, 202);
    const full = await asyncInvoke(gw, 'bulky', event);
    assert.equal(full.status, 429);
    assert.equal(full.headers.get('retry-after'), '1');
    const body = (await full.json()) as { error: { code: string; details: unknown } };
    assert.equal(body.error.code, 'QUEUE_FULL');
    assert.deepEqual(body.error.details, { function: 'bulky', queuedBytesLimit: room });
    // Nothing of the refused invocation was kept.
    const queued = new QueuedBytes(redis, gw.prefix);
    assert.ok((await queued.total('bulky')) <= room);
    assert.equal(await gw.deps.queue.queue.count(), 3);
    // Another function has its own room.
    assert.equal((await asyncInvoke(gw, 'other', event)).status, 202);
    // Once a worker has run them, the room is back.
    await gw.startWorker();
    await eventually(async () => (await queued.total('bulky')) === 0 && (await queued.total('other')) === 0, 10_000, 'the queued bytes to be released');
    assert.equal((await asyncInvoke(gw, 'bulky', event)).status, 202);
  });
});

test('a function keeps at most recordsPerFunction records: the oldest answer 404', async () => {
  await withGateway({ limits: { recordsPerFunction: 5 } }, async (gw) => {
    await gw.deploy('chatty', { runtime: 'nodejs20', code: NODE_CODE });
    await gw.startWorker();
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(((await (await asyncInvoke(gw, 'chatty', { behave: 'ok', i })).json()) as { invocationId: string }).invocationId);
    assert.deepEqual(await gw.deps.invocations.idsOf('chatty'), ids.slice(3));
    for (const id of ids.slice(0, 3)) {
      const res = await gw.app.request(`/v1/invocations/${id}`, { headers: auth });
      assert.equal(res.status, 404);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'INVOCATION_NOT_FOUND');
    }
    for (const id of ids.slice(3)) assert.equal((await gw.app.request(`/v1/invocations/${id}`, { headers: auth })).status, 200);
    // Sync invocations' records (made by the worker) count too.
    await gw.invoke('chatty', { behave: 'ok' });
    assert.equal((await gw.deps.invocations.idsOf('chatty')).length, 5);
  });
});

test('a deploy beyond versionsPerFunction prunes the oldest versions but never the current one, and their unused code', async () => {
  await withGateway({ limits: { versionsPerFunction: 3 } }, async (gw) => {
    const code = (n: number) => `export default async () => ${n};`;
    const first = await gw.deploy('evolving', { runtime: 'nodejs20', code: code(0) });
    const deployed = [first.json];
    for (let n = 1; n < 3; n++) deployed.push((await gw.deploy('evolving', { runtime: 'nodejs20', code: code(n) })).json);
    assert.deepEqual(deployed.map((d) => d.prunedVersions), [[], [], []]);
    // Rolling back to the first version makes it current: it is the oldest, but stays (then as
    // the version the next deploy replaces: invocations of it may still be queued).
    const back = await gw.deploy('evolving', { runtime: 'nodejs20', code: code(0) });
    assert.equal(back.json.version, first.json.version);
    const fourth = await gw.deploy('evolving', { runtime: 'nodejs20', code: code(3) });
    assert.equal(fourth.status, 200);
    assert.deepEqual(fourth.json.prunedVersions, [deployed[1].version]);
    const listed = await gw.app.request('/v1/functions/evolving/versions', { headers: auth });
    const versions = ((await listed.json()) as { versions: { version: string }[] }).versions.map((v) => v.version);
    assert.deepEqual(versions.sort(), [first.json.version, deployed[2].version, fourth.json.version].sort());
    const gone = await gw.app.request(`/v1/functions/evolving/versions/${deployed[1].version}`, { headers: auth });
    assert.equal(gone.status, 404);
    assert.equal(((await gone.json()) as { error: { code: string } }).error.code, 'VERSION_NOT_FOUND');
    // The pruned version's code was its own: gone from Redis. The kept versions' code is there.
    const version = async (v: string) => (await (await gw.app.request(`/v1/functions/evolving/versions/${v}`, { headers: auth })).json()) as { spec: { code: { digest: string } } };
    const kept = await version(first.json.version);
    assert.equal(await redis.exists(`${gw.prefix}:code:${kept.spec.code.digest}`), 1);
    const codeKeys = await redis.keys(`${gw.prefix}:code:*`);
    assert.equal(codeKeys.length, 3, `code blobs: ${codeKeys.join(', ')}`);
  });
});

test('finished jobs are capped by count, failed ones too', async () => {
  await withGateway({ limits: { completedJobsKept: 3, failedJobsKept: 2 } }, async (gw) => {
    await gw.deploy('many', { runtime: 'nodejs20', code: NODE_CODE });
    await gw.startWorker();
    for (let i = 0; i < 6; i++) await gw.invoke('many', { behave: 'ok' }, { query: '?async=true' });
    for (let i = 0; i < 4; i++) await gw.invoke('many', { behave: 'ok' }); // sync: removed on completion
    const q = gw.deps.queue.queue;
    await eventually(async () => {
      const left = await q.getJobCounts('wait', 'active');
      return (left.wait ?? 0) + (left.active ?? 0) === 0;
    }, 10_000, 'the jobs to run');
    assert.ok((await q.getCompletedCount()) <= 3, `completed jobs kept: ${await q.getCompletedCount()}`);
    // Sync jobs are not retried: an infrastructure failure fails them at once.
    for (let i = 0; i < 4; i++) assert.equal((await gw.invoke('many', { behave: 'infra-fail' })).status, 500);
    await eventually(async () => (await q.getFailedCount()) > 0, 10_000, 'failed jobs');
    assert.ok((await q.getFailedCount()) <= 2, `failed jobs kept: ${await q.getFailedCount()}`);
  });
});

test('a Redis at its maxmemory is answered 503 STORAGE_FULL, stays within its bound, and loses nothing accepted', { timeout: 120_000 }, async () => {
  const full = await startRedis();
  const admin = new Redis(full.url);
  try {
    await withGateway(
      { limits: { queuedBytesPerFunction: 1 << 30 } },
      async (gw) => {
        await gw.deploy('filler', { runtime: 'nodejs20', code: NODE_CODE });
        const base = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
        const bound = base + 8 * 1024 * 1024;
        await admin.config('SET', 'maxmemory', String(bound));
        const event = { behave: 'ok', pad: 'x'.repeat(256 * 1024) };
        const accepted: string[] = [];
        let refused: Response | undefined;
        for (let i = 0; i < 200 && !refused; i++) {
          const res = await asyncInvoke(gw, 'filler', event);
          if (res.status === 202) accepted.push(((await res.json()) as { invocationId: string }).invocationId);
          else refused = res;
        }
        assert.ok(refused, 'Redis filled up');
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.get('retry-after'), '5');
        assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'STORAGE_FULL');
        const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
        console.log(`# ${accepted.length} async invocations of 256 KiB accepted; Redis used ${used} B of its ${bound} B bound`);
        // Redis checks the bound before each command, so the last write accepted may pass it by its own size.
        assert.ok(used <= bound + 512 * 1024, `used_memory ${used} over the bound ${bound}`);
        // Over its bound for certain (the refused invocation's undo freed a little room), a
        // sync invocation is refused the same way, not 500.
        await admin.config('SET', 'maxmemory', String(used - 1024 * 1024));
        const sync = await gw.invoke('filler', { behave: 'ok' });
        assert.equal(sync.status, 503);
        assert.equal(((await sync.json()) as { error: { code: string } }).error.code, 'STORAGE_FULL');
        // Every invocation answered 202 is still there, and runs once there is room.
        await admin.config('SET', 'maxmemory', '0');
        await gw.startWorker();
        await eventually(async () => {
          const recs = await Promise.all(accepted.map((id) => gw.deps.invocations.get(id)));
          return recs.every((r) => r?.status === 'succeeded');
        }, 30_000, 'every accepted invocation to succeed');
        // The refused ones left no queued bytes behind: all came back.
        await eventually(async () => (await new QueuedBytes(admin, gw.prefix).total('filler')) === 0, 10_000, 'the queued bytes to be released');
      },
      full,
    );
  } finally {
    admin.disconnect();
    await full.stop();
  }
});
