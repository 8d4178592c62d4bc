import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { LineSplitter, readLines } from './lines.js';

function split(chunks: (string | Buffer)[], maxLineBytes?: number): { lines: string[]; overflow: number[]; splitter: LineSplitter } {
  const lines: string[] = [];
  const overflow: number[] = [];
  const splitter = new LineSplitter((l) => lines.push(l), maxLineBytes, (b) => overflow.push(b));
  for (const c of chunks) splitter.push(typeof c === 'string' ? Buffer.from(c) : c);
  return { lines, overflow, splitter };
}

test('lines come out whole however the bytes are chunked, a delimiter split across chunks included', () => {
  assert.deepEqual(split(['{"a":1}\n{"b"', ':2}', '\n', '\n{"c":3}\n']).lines, ['{"a":1}', '{"b":2}', '', '{"c":3}']);
  // Every possible split point of the same bytes gives the same lines.
  const text = 'one\ntwo two\n\nthree\n';
  for (let i = 0; i <= text.length; i++) {
    assert.deepEqual(split([text.slice(0, i), text.slice(i)]).lines, ['one', 'two two', '', 'three'], `split at ${i}`);
  }
  // Byte by byte, with a multi-byte character cut in the middle.
  const bytes = Buffer.from('h\u00e9llo \u20ac\nend\n');
  assert.deepEqual(split([...bytes].map((b) => Buffer.from([b]))).lines, ['h\u00e9llo \u20ac', 'end']);
  assert.deepEqual(split(['no newline yet']).lines, []);
  assert.equal(split(['no newline yet']).splitter.pendingBytes, 14);
});

test('many small lines in one chunk each come out', () => {
  const n = 100_000;
  const { lines } = split([Array.from({ length: n }, (_, i) => `${i}`).join('\n') + '\n']);
  assert.equal(lines.length, n);
  assert.equal(lines[n - 1], String(n - 1));
});

test('splitting is linear: every byte is searched once, for 1 MB as for 10 MB', () => {
  // Counted work, not time: a 64 KiB-chunked line of 1 MB and one of 10 MB, each with its
  // newline in the last chunk. The old splitter searched its whole buffer on each chunk
  // (n^2 / 2 / chunk bytes: 8 MB of searching for 1 MB, 800 MB for 10 MB).
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  for (const mb of [1, 10]) {
    const count = (mb * 1024 * 1024) / chunk.length;
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    for (let i = 0; i < count; i++) s.push(chunk);
    s.push(Buffer.from('\n'));
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.length, mb * 1024 * 1024);
    assert.equal(s.scannedBytes, mb * 1024 * 1024 + 1, `${mb} MB: each byte searched exactly once`);
  }
});

test('a line past the cap is reported at once, when it is crossed, and nothing more is delivered or held', () => {
  const cap = 1000;
  const { lines, overflow, splitter } = split(['ok\n', 'x'.repeat(600), 'x'.repeat(600), 'x'.repeat(5000), '\nlater\n'], cap);
  assert.deepEqual(lines, ['ok']);
  assert.deepEqual(overflow, [1200], 'reported on the chunk that crossed the cap, with the bytes seen');
  assert.equal(splitter.overflowed, true);
  assert.equal(splitter.pendingBytes, 0, 'nothing of the long line is kept');
  assert.equal(splitter.scannedBytes, 3 + 1200, 'later chunks are not even searched');
  // A line of exactly the cap is fine; the newline does not count.
  assert.deepEqual(split(['y'.repeat(cap) + '\n'], cap).lines, ['y'.repeat(cap)]);
  // A line that crosses it inside one chunk, before its newline.
  assert.deepEqual(split(['a\n' + 'z'.repeat(cap + 1) + '\nb\n'], cap).overflow, [cap + 1]);
});

test('readLines destroys the stream when a line passes the cap', async () => {
  const stream = new PassThrough();
  const lines: string[] = [];
  let overflowBytes = 0;
  readLines(stream, (l) => lines.push(l), { maxLineBytes: 10, onOverflow: (b) => (overflowBytes = b) });
  stream.write('short\n');
  stream.write('far too long for the cap');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(lines, ['short']);
  assert.equal(overflowBytes, 24);
  assert.equal(stream.destroyed, true);
});
