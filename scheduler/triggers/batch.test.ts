import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvocationRecord } from '../../common/invocations.js';
import { Batcher, backoffDelayMs, chunksByBytes, failedItemIds, runBatch, Slots, type BatchItem } from './batch.js';

const rec = (id: string, over: Partial<InvocationRecord>): InvocationRecord => ({
  id, function: 'f', version: 'v', mode: 'async', status: 'succeeded', createdAt: '', attempts: 1, stdout: '', stderr: '', stdoutTruncated: false, stderrTruncated: false, ...over,
});

test('backoff: exponential doubles, fixed stays, jitter stays within [delay/2, delay]', () => {
  assert.equal(backoffDelayMs({ type: 'exponential', delayMs: 100, jitter: false }, 1), 100);
  assert.equal(backoffDelayMs({ type: 'exponential', delayMs: 100, jitter: false }, 3), 400);
  assert.equal(backoffDelayMs({ type: 'fixed', delayMs: 100, jitter: false }, 3), 100);
  assert.equal(backoffDelayMs({ type: 'fixed', delayMs: 100, jitter: true }, 1, () => 0), 50);
  assert.equal(backoffDelayMs({ type: 'fixed', delayMs: 100, jitter: true }, 1, () => 1), 100);
});

test('batchItemFailures: none, some, and an unknown or malformed report failing all', () => {
  const ids = new Set(['a', 'b', 'c']);
  assert.equal(failedItemIds({ ok: 1 }, ids), undefined);
  assert.equal(failedItemIds({ batchItemFailures: [] }, ids), undefined);
  assert.deepEqual(failedItemIds({ batchItemFailures: [{ itemIdentifier: 'b' }] }, ids), new Set(['b']));
  assert.equal(failedItemIds({ batchItemFailures: [{ itemIdentifier: 'z' }] }, ids), 'all');
  assert.equal(failedItemIds({ batchItemFailures: 'b' }, ids), 'all');
});

test('runBatch invokes only the failed items again, up to maxAttempts', async () => {
  const items: BatchItem[] = ['1', '2', '3', '4'].map((id) => ({ id, event: id }));
  const seen: string[][] = [];
  const slept: number[] = [];
  const out = await runBatch(
    items,
    async (batch, attempt) => {
      seen.push(batch.map((i) => i.id));
      // 2 fails once, 4 always.
      const failed = batch.filter((i) => i.id === '4' || (i.id === '2' && attempt === 1));
      return rec(`inv${attempt}`, { result: { batchItemFailures: failed.map((i) => ({ itemIdentifier: i.id })) } });
    },
    { maxAttempts: 3, backoff: { type: 'fixed', delayMs: 10, jitter: false } },
    async (ms) => void slept.push(ms),
  );
  assert.deepEqual(seen, [['1', '2', '3', '4'], ['2', '4'], ['4']]);
  assert.deepEqual(slept, [10, 10]);
  assert.deepEqual(out.get('1'), { ok: true, invocationId: 'inv1' });
  assert.deepEqual(out.get('2'), { ok: true, invocationId: 'inv2' });
  assert.equal(out.get('4')?.ok, false);
  assert.match((out.get('4') as { reason: string }).reason, /item 4 failed in each of 3 attempts/);
});

test('runBatch: an invocation that failed outright fails its items without more attempts', async () => {
  let calls = 0;
  const out = await runBatch([{ id: 'x', event: 1 }], async () => (calls++, rec('i', { status: 'failed', error: { code: 'FUNCTION_ERROR', message: 'boom' } })), undefined, async () => {});
  assert.equal(calls, 1);
  assert.match((out.get('x') as { reason: string }).reason, /FUNCTION_ERROR: boom/);
});

test('Slots hand over in order; Batcher flushes when full or after its window', async () => {
  const slots = new Slots(1);
  await slots.take();
  const order: number[] = [];
  const a = slots.take().then(() => order.push(1));
  const b = slots.take().then(() => order.push(2));
  slots.give();
  await a;
  slots.give();
  await b;
  assert.deepEqual(order, [1, 2]);
  const batches: number[][] = [];
  const batcher = new Batcher<number>(3, 20, (items) => batches.push(items));
  for (const i of [1, 2, 3, 4]) batcher.add(i);
  assert.deepEqual(batches, [[1, 2, 3]]);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(batches, [[1, 2, 3], [4]]);
});

test('a batch over the event bound goes as several invocations, each within it', async () => {
  const items: BatchItem[] = ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, event: id, bytes: 40 }));
  // 2 + 41 per item: two fit in 100 bytes.
  assert.deepEqual(chunksByBytes(items, 100).map((c) => c.map((i) => i.id)), [['a', 'b'], ['c', 'd'], ['e']]);
  assert.deepEqual(chunksByBytes([{ id: 'big', event: 0, bytes: 500 }], 100).map((c) => c.length), [1]);
  const seen: string[][] = [];
  const out = await runBatch(items, async (batch, attempt) => {
    seen.push(batch.map((i) => i.id));
    return rec(`i${attempt}${batch[0]!.id}`, { result: { batchItemFailures: batch.filter((i) => i.id === 'c' && attempt === 1).map((i) => ({ itemIdentifier: i.id })) } });
  }, { maxAttempts: 2 }, async () => {}, 100);
  assert.deepEqual(seen, [['a', 'b'], ['c', 'd'], ['e'], ['c']]);
  assert.equal([...out.values()].filter((o) => o.ok).length, 5);
});
