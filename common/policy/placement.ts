/**
 * Placement: which worker an invocation goes to, decided from what workers report
 * (worker/report.ts). Pure, so it is unit-tested without Redis.
 *
 * Preference: a worker holding an idle warm container of that function version; else one
 * with an idle stem cell of the runtime shape and room in its memory budget; else no
 * choice (the shared queue, which every worker consumes). Reports older than maxAgeMs
 * are ignored: a worker that stopped reporting may be gone, and a job in a dead worker's
 * queue would wait there until its deadline.
 */
import { shapeKey } from '../keys.js';

export interface WorkerReport {
  id: string;
  /** The worker's own queue. */
  queue: string;
  /** Epoch ms of the report. */
  at: number;
  /** Memory budget not yet committed to containers. */
  freeMb: number;
  /** name@version -> idle warm containers. */
  warm: Record<string, number>;
  /** "runtime/memoryMb" -> idle stem cells. */
  stems: Record<string, number>;
  /** Invocations running or waiting on this worker. */
  inflight: number;
}

export interface PlacementWant {
  fn: string;
  runtime: string;
  memoryMb: number;
  /** A bridge function takes only a bridge stem cell (absent: none). */
  network?: 'none' | 'bridge';
}

export const REPORT_MAX_AGE_MS = 2000;

export function place(reports: readonly WorkerReport[], want: PlacementWant, now: number, maxAgeMs = REPORT_MAX_AGE_MS): string | undefined {
  const fresh = reports.filter((r) => now - r.at <= maxAgeMs);
  const byLoad = (a: WorkerReport, b: WorkerReport) => a.inflight - b.inflight;
  const warm = fresh.filter((r) => (r.warm[want.fn] ?? 0) > 0).sort((a, b) => (b.warm[want.fn] ?? 0) - (a.warm[want.fn] ?? 0) || byLoad(a, b));
  if (warm[0]) return warm[0].queue;
  const shape = shapeKey(want.runtime, want.memoryMb, want.network);
  const stem = fresh.filter((r) => (r.stems[shape] ?? 0) > 0 && r.freeMb >= 0).sort((a, b) => (b.stems[shape] ?? 0) - (a.stems[shape] ?? 0) || byLoad(a, b));
  if (stem[0]) return stem[0].queue;
  return undefined;
}

/** A worker's own queue name (BullMQ names may not contain ':'). */
export function workerQueueName(base: string, workerId: string): string {
  return `${base}.w.${workerId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

export { workersKey } from '../keys.js';
