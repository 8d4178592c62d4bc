import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recordSummary } from './client.js';
import type { InvocationRecord } from '../common/invocations.js';

const base: InvocationRecord = {
  id: 'inv-1',
  function: 'hello',
  version: 'sha256:abc',
  mode: 'async',
  status: 'succeeded',
  createdAt: '2026-11-29T08:00:00.000Z',
  attempts: 1,
  stdout: '',
  stderr: '',
  stdoutTruncated: false,
  stderrTruncated: false,
};

test('a succeeded record shows its start, its time per phase and its result', () => {
  const rec = { ...base, startKind: 'warm' as const, timings: { queueMs: 5, initMs: 0.04874, execMs: 1.386, totalMs: 17.4 }, result: { hello: 'world' } };
  assert.equal(recordSummary(rec), 'inv-1 hello succeeded (warm)\ntime: queue 5 ms, init 0.05 ms, exec 1.39 ms, total 17 ms\nresult: {"hello":"world"}');
  // A warm container frozen while idle was thawed for it: the thaw is a phase of its own.
  assert.match(recordSummary({ ...rec, timings: { ...rec.timings, thawMs: 0.31 } }), /^time: queue 5 ms, init 0\.05 ms, thaw 0\.31 ms, exec 1\.39 ms, total 17 ms$/m);
});

test('a failed record shows its error code, message and indented stack, and its attempts', () => {
  const rec: InvocationRecord = { ...base, status: 'failed', attempts: 2, error: { code: 'FUNCTION_ERROR', message: 'boom', stack: 'Error: boom\n    at f (index.mjs:1:1)' } };
  assert.equal(recordSummary(rec), 'inv-1 hello failed, 2 attempts\nerror: FUNCTION_ERROR: boom\n  Error: boom\n      at f (index.mjs:1:1)');
});

test('an HTTP-style answer is summarised by status and body size; truncated output is said', () => {
  const rec: InvocationRecord = { ...base, response: { status: 201, headers: {}, body: Buffer.from('created!').toString('base64') }, stdoutTruncated: true };
  assert.equal(recordSummary(rec), 'inv-1 hello succeeded\nresponse: HTTP 201, 8 bytes of body\noutput: truncated at the record\'s limit');
});

test('a queued record says only that', () => {
  assert.equal(recordSummary({ ...base, status: 'queued' }), 'inv-1 hello queued');
});
