import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LOST_CHECK_MS, SILENT_MS, WorkerSilence } from './lost-jobs.js';
import type { WorkerReport } from './policy/placement.js';

const report = (id: string, at: number): WorkerReport => ({ id, queue: `invocations.w.${id}`, at, freeMb: 0, warm: {}, stems: {}, inflight: 0 });

/** Reads every 200 ms from t0 to t1 of workers whose `at` is given per read time. */
function readEvery200(s: WorkerSilence, t0: number, t1: number, reports: (t: number) => WorkerReport[]): void {
  for (let t = t0; t <= t1; t += 200) s.hear(reports(t), t);
}

test('a worker whose report stops changing is silent after SILENT_MS of regular reads; one that keeps reporting is not', () => {
  const s = new WorkerSilence();
  readEvery200(s, 0, SILENT_MS - 200, (t) => [report('dead', 0), report('live', t)]);
  assert.equal(s.silent('dead', SILENT_MS - 200), false, 'not yet');
  readEvery200(s, SILENT_MS, SILENT_MS + 400, (t) => [report('dead', 0), report('live', t)]);
  assert.equal(s.silent('dead', SILENT_MS + 400), true);
  assert.equal(s.silent('live', SILENT_MS + 400), false);
});

test("a stall of the reading client is not taken for the worker's silence", () => {
  const s = new WorkerSilence();
  // Read at 0, then the client's own event loop stalls: its next read comes 4 s later,
  // before the worker's report (overdue behind the same stall) has changed.
  s.hear([report('w', 0)], 0);
  s.hear([report('w', 0)], 4000);
  assert.equal(s.silent('w', 4000), false, 'two reads in the span: the client was stalled');
  // Nor is a worker judged on reads that have stopped.
  const t = new WorkerSilence();
  readEvery200(t, 0, 4000, () => [report('w', 0)]);
  assert.equal(t.silent('w', 4000), true);
  assert.equal(t.silent('w', 4000 + LOST_CHECK_MS), false, 'the last read is too old to judge by');
});

test('a worker without a report (stopping: it finishes what it runs) or without a name is not silent', () => {
  const s = new WorkerSilence();
  readEvery200(s, 0, 4000, () => [report('w', 0)]);
  s.hear([], 4200);
  assert.equal(s.silent('w', 4200), false);
  assert.equal(s.silent(null, 4200), false);
});
