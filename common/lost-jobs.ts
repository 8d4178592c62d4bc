/**
 * Finding the sync jobs whose worker died while it ran them (InvocationClient's side): a
 * dead worker sends no reply, and its caller must not wait for its deadline (where it was
 * answered NO_CAPACITY, which it was not) or the end of its budget.
 *
 * Every LOST_CHECK_MS, one pipeline looks at the jobs of the waiters older than that. A
 * started job (processedOn) is lost when
 *  - its worker (processedBy, worker/main.ts names its consumers) has not changed its
 *    report for SILENT_MS, as this client read the reports (WorkerSilence), or
 *  - its lock (renewed while the worker lives, worker/main.ts DEFAULT_LOCK_MS: 10 s) has
 *    lapsed.
 * A job whose lock lapsed is withdrawn here; one still locked by a silent worker is taken
 * back by BullMQ's stalled check or the scheduler once the lock lapses, and answered
 * WORKER_LOST by the worker that takes it (common/queue.ts, rule 1). Either way it does not
 * run again. A worker whose report is gone (it stopped: it finishes what it runs) is not
 * silent; only its lock tells.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { WorkerReport } from './policy/placement.js';

/**
 * How often waiters are looked at, and how old one must be to be looked at: most sync
 * invocations are answered well within it and cost nothing. Measured: the pipeline for
 * 1,000 waiters took 16.5 ms (median) against a local Redis, 0.18 ms for one.
 */
export const LOST_CHECK_MS = 1000;
/**
 * A worker whose report has not changed for this long is taken for dead: it reports every
 * 200 ms (worker/report.ts), so only a dead worker, or one whose event loop is stuck this
 * long, is silent; placement already ignores reports older than REPORT_MAX_AGE_MS (2 s).
 */
export const SILENT_MS = 3000;

/**
 * Reads of an unchanged report that silence takes besides its SILENT_MS: the client reads
 * every 200 ms, so a client that read this few times in that span was itself stalled (a
 * process running gateway and worker, `faasbox up`, stalls both), and its last read may
 * have come before the worker's overdue report.
 */
export const SILENT_READS = 5;

/** What withdrawing a job found: nobody had taken it, its worker is gone, or a live worker holds it. */
export type Claim = 'unstarted' | 'lost' | 'held';

/** Which workers went silent, from the reports as one client reads them (its own clock: no skew). Pure. */
export class WorkerSilence {
  /** Worker id -> its report's `at`, when (this client's clock) that value was first read, and reads of it since. */
  private readonly heard = new Map<string, { at: number; since: number; reads: number }>();
  private lastReadAt = 0;

  hear(reports: readonly WorkerReport[], now: number): void {
    const ids = new Set<string>();
    for (const r of reports) {
      ids.add(r.id);
      const h = this.heard.get(r.id);
      if (h?.at === r.at) h.reads++;
      else this.heard.set(r.id, { at: r.at, since: now, reads: 0 });
    }
    for (const id of this.heard.keys()) if (!ids.has(id)) this.heard.delete(id);
    this.lastReadAt = now;
  }

  /**
   * A worker whose report is gone (it stopped: it finishes what it runs) is not silent, nor
   * is anyone while this client's own reads lag.
   */
  silent(workerId: string | null, now: number): boolean {
    const h = workerId ? this.heard.get(workerId) : undefined;
    return h !== undefined && now - this.lastReadAt < LOST_CHECK_MS && this.lastReadAt - h.since >= SILENT_MS && h.reads >= SILENT_READS;
  }
}

export class LostJobs {
  /** Sync invocation id -> the queue it was added to and when. */
  private readonly watched = new Map<string, { queue: Queue; since: number }>();
  private readonly silence = new WorkerSilence();
  private readonly timer: NodeJS.Timeout;
  private checking = false;
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    /** A job lives in the queue it was added to, or here once it was handed over (common/queue-handover.ts). */
    private readonly shared: Queue,
    private readonly onLost: (id: string) => void,
  ) {
    this.timer = setInterval(() => void this.check(), LOST_CHECK_MS);
    this.timer.unref();
  }

  watch(id: string, queue: Queue): void {
    this.watched.set(id, { queue, since: Date.now() });
  }

  unwatch(id: string): void {
    this.watched.delete(id);
  }

  /** The workers' reports as just read (every 200 ms by the client). */
  hear(reports: readonly WorkerReport[]): void {
    this.silence.hear(reports, Date.now());
  }

  private queuesOf(queue: Queue): Queue[] {
    return queue === this.shared ? [queue] : [queue, this.shared];
  }

  private async check(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      const now = Date.now();
      const due = [...this.watched].filter(([, w]) => now - w.since >= LOST_CHECK_MS);
      if (!due.length) return;
      const looks = due.flatMap(([id, w]) => this.queuesOf(w.queue).map((queue) => ({ id, queue })));
      const p = this.redis.pipeline();
      for (const { id, queue } of looks) {
        p.hmget(queue.toKey(id), 'processedOn', 'finishedOn', 'pb');
        p.exists(`${queue.toKey(id)}:lock`);
      }
      const res = (await p.exec()) ?? [];
      for (const [i, { id, queue }] of looks.entries()) {
        const [processedOn, finishedOn, processedBy] = (res[2 * i]?.[1] ?? []) as (string | null)[];
        const locked = res[2 * i + 1]?.[1] === 1;
        if (!processedOn || finishedOn || !this.watched.has(id)) continue;
        if (locked ? this.silence.silent(processedBy ?? null, Date.now()) : (await this.claim(id, queue)) === 'lost') {
          this.watched.delete(id);
          this.onLost(id);
        }
      }
    } catch (err) {
      if (!this.stopped) console.error(`[faasbox] invocation client: looking for lost workers: ${(err as Error).message}`);
    } finally {
      this.checking = false;
    }
  }

  /**
   * Removes a job that no live worker holds. A job found in neither queue finished (its
   * reply is on its way) and counts as removed.
   */
  async claim(id: string, added: Queue): Promise<Claim> {
    for (const queue of this.queuesOf(added)) {
      const [timestamp, processedOn] = await this.redis.hmget(queue.toKey(id), 'timestamp', 'processedOn');
      if (!timestamp) continue;
      // Queue.remove refuses a job locked by a worker, which is exactly "a live worker has it".
      if ((await queue.remove(id)) !== 1) return 'held';
      return processedOn ? 'lost' : 'unstarted';
    }
    return 'unstarted';
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
