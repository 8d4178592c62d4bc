import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutputBatcher } from './output.js';
import type { OutputStream } from './instance.js';

function recorder(delayMs = 0) {
  const writes: [OutputStream, string][] = [];
  const write = async (s: OutputStream, chunk: string) => {
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    writes.push([s, chunk]);
  };
  return { writes, write };
}

test('a short invocation costs one write per stream, at the final flush', async () => {
  const r = recorder();
  const b = new OutputBatcher(r.write, 1000, 50);
  b.push('stdout', 'a');
  b.push('stderr', 'x');
  b.push('stdout', 'b');
  assert.equal(r.writes.length, 0);
  await b.flush();
  assert.deepEqual(r.writes, [
    ['stdout', 'ab'],
    ['stderr', 'x'],
  ]);
  await b.flush();
  assert.equal(r.writes.length, 2, 'nothing pending, nothing written');
});

test('a long invocation streams: the timer writes before the end', async () => {
  const r = recorder();
  const b = new OutputBatcher(r.write, 1000, 20);
  b.push('stdout', 'step 1\n');
  await new Promise((res) => setTimeout(res, 60));
  assert.deepEqual(r.writes, [['stdout', 'step 1\n']]);
  b.push('stdout', 'step 2\n');
  await b.flush();
  assert.deepEqual(r.writes, [
    ['stdout', 'step 1\n'],
    ['stdout', 'step 2\n'],
  ]);
});

test('batches keep their order even when a write is slow', async () => {
  const r = recorder(30);
  const b = new OutputBatcher(r.write, 1000, 1);
  b.push('stdout', '1');
  await new Promise((res) => setTimeout(res, 5)); // the timer's write is under way
  b.push('stdout', '2');
  await b.flush();
  assert.deepEqual(r.writes.map(([, c]) => c), ['1', '2']);
});

test('keeps one character more than the record holds, so the record flags truncation', async () => {
  const r = recorder();
  const b = new OutputBatcher(r.write, 10, 1000);
  b.push('stdout', 'x'.repeat(8));
  b.push('stdout', 'y'.repeat(8));
  b.push('stdout', 'z');
  b.push('stderr', 'e');
  await b.flush();
  assert.deepEqual(r.writes, [
    ['stdout', 'x'.repeat(8) + 'yyy'],
    ['stderr', 'e'],
  ]);
});

test('a failed write loses only its own batch', async () => {
  const seen: string[] = [];
  let fail = true;
  const b = new OutputBatcher(
    async (_s, chunk) => {
      if (fail) {
        fail = false;
        throw new Error('redis down');
      }
      seen.push(chunk);
    },
    100,
    1000,
  );
  b.push('stdout', 'lost');
  await b.flush();
  b.push('stdout', 'kept');
  await b.flush();
  assert.deepEqual(seen, ['kept']);
});
