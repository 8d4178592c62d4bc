/**
 * The enqueuing side of the invocation queue: adds jobs and, for sync invocations, waits
 * for their replies.
 *
 * Why not job.waitUntilFinished(): sync jobs use removeOnComplete:true, and
 * waitUntilFinished re-reads the finished job from Redis, racing its removal; measured here,
 * that threw "Missing key" on 14-17% of jobs. Instead there is ONE QueueEvents reader per
 * client and a Map of pending waiters keyed by the job id (= invocation id). The
 * 'completed' event carries the return value itself, so nothing is read back from the job.
 *
 * Two orderings matter:
 *  - the waiter is registered BEFORE the job is added, so a reply that arrives before
 *    add() resolves still finds it;
 *  - the QueueEvents cursor starts at the stream's last id as read at open(), not at '$'
 *    (which means "whatever is last when my first XREAD runs"), so no event between open()
 *    and the reader's first XREAD can be skipped.
 *
 * A worker that dies while it runs a sync job sends no reply. Every LOST_CHECK_MS the
 * client looks, in one pipeline, at the jobs its older waiters wait for. A started job
 * (processedOn) is lost when its worker (processedBy) has not changed its report for
 * SILENT_MS, as this client saw the reports (its own clock, no skew), or when its lock
 * (renewed while the worker lives, worker/main.ts DEFAULT_LOCK_MS: 10 s) has lapsed. Its
 * caller is answered 'worker-lost' then, instead of at its deadline (as 'no-capacity',
 * which it was not) or at the end of its budget. A job whose lock lapsed is withdrawn; one
 * still locked by a silent worker is taken back by BullMQ's stalled check or the
 * scheduler once the lock lapses, and answered WORKER_LOST by the worker that takes it
 * (common/queue.ts, rule 1): either way it does not run again.
 */
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { INVOCATION_JOB_NAME, INVOCATION_QUEUE, invocationJobOptions, type InvocationJob } from './queue.js';
import { place, workersKey, type PlacementWant, type WorkerReport } from '../scheduler/placement.js';

export type SyncOutcome =
  /** The worker returned; `returnvalue` is its InvocationResult as it came off the wire. */
  | { kind: 'completed'; returnvalue: unknown }
  /** The worker's processor threw (an infrastructure failure, not a function error). */
  | { kind: 'failed'; reason: string }
  /** No worker started the job before its deadline; the job was withdrawn from the queue. */
  | { kind: 'no-capacity' }
  /** A worker started the job but no reply came within the budget. */
  | { kind: 'timeout' }
  /** The worker that started the job died (went silent, or its lock lapsed); the job will not run again. */
  | { kind: 'worker-lost' };

type Reply = Extract<SyncOutcome, { kind: 'completed' | 'failed' | 'worker-lost' }>;

/**
 * How often the lock of a started sync job is looked at, and how old a waiter must be to
 * be looked at: most sync invocations are answered well within it and cost nothing.
 */
export const LOST_CHECK_MS = 1000;
/**
 * A worker whose report has not changed for this long is taken for dead: it reports every
 * 200 ms (worker/report.ts), so only a dead worker, or one whose event loop is stuck this
 * long, is silent; placement already ignores reports older than REPORT_MAX_AGE_MS (2 s).
 */
export const SILENT_MS = 3000;

export interface InvocationClientOptions {
  /** A connection for adding jobs; shared, not closed by the client. */
  connection: Redis;
  /** Key prefix of the deployment (BullMQ `prefix`). */
  prefix: string;
  queueName?: string;
  /** false: every job goes to the shared queue (no placement). */
  placement?: boolean;
  /** Set by open(): the connection the lanes add jobs on (see there). */
  addConnection?: Redis;
}

/** One queue and its event reader: the shared queue, or one worker's own queue. */
interface Lane {
  queue: Queue;
  events: QueueEvents;
  eventsConnection: Redis;
}

export class InvocationClient {
  private readonly waiters = new Map<string, (reply: Reply) => void>();
  private closed = false;
  private readonly lanes = new Map<string, Promise<Lane>>();
  /** Worker lane -> sync invocations using it right now. */
  private readonly laneUsers = new Map<string, number>();
  private reports: WorkerReport[] = [];
  private reportTimer: NodeJS.Timeout | undefined;
  /** Sync invocation id -> the queue it was added to and when, for the lost-worker check. */
  private readonly watched = new Map<string, { queue: Queue; since: number }>();
  private readonly lostTimer: NodeJS.Timeout;
  private checking = false;
  /** Worker id -> its report's `at`, and when (this client's clock) that value was first read. */
  private readonly heard = new Map<string, { at: number; since: number }>();
  private lastRefreshAt = 0;

  private constructor(
    private readonly options: InvocationClientOptions,
    private readonly shared: Lane,
  ) {
    this.listen(shared);
    this.lostTimer = setInterval(() => void this.checkLost(), LOST_CHECK_MS);
    this.lostTimer.unref();
  }

  get queue(): Queue {
    return this.shared.queue;
  }

  private listen(lane: Lane): void {
    lane.events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { kind: 'completed', returnvalue }));
    lane.events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { kind: 'failed', reason: failedReason }));
    // QueueEvents re-emits connection errors; ioredis reconnects by itself and the reader
    // resumes from its last id, so an error here is logged, not fatal.
    lane.events.on('error', (err) => {
      if (!this.closed) console.error(`[faasbox] invocation events reader: ${err.message}`);
    });
  }

  private static async openLane(options: InvocationClientOptions, name: string): Promise<Lane> {
    const queue = new Queue(name, { connection: options.addConnection ?? options.connection, prefix: options.prefix });
    await queue.waitUntilReady();
    const last = await options.connection.xrevrange(queue.keys.events as string, '+', '-', 'COUNT', 1);
    const lastEventId = last[0]?.[0] ?? '0-0';
    // The reader blocks on XREAD, so it needs a connection of its own, and one that retries
    // forever instead of failing commands while Redis restarts. Not auto-pipelined: one
    // blocking read at a time has nothing to batch, and every auto-pipeline batch copies
    // BullMQ's ~50 Lua scripts onto a new Pipeline object (4.5% of a loaded gateway's CPU).
    const eventsConnection = options.connection.duplicate({ maxRetriesPerRequest: null, enableAutoPipelining: false });
    const events = new QueueEvents(name, { connection: eventsConnection, prefix: options.prefix, lastEventId });
    await events.waitUntilReady();
    return { queue, events, eventsConnection };
  }

  static async open(given: InvocationClientOptions): Promise<InvocationClient> {
    // Adds go on a connection of their own that is not auto-pipelined: an add is on every
    // invocation's path, and auto-pipelining holds each command until setImmediate.
    const options = { ...given, addConnection: given.connection.duplicate({ enableAutoPipelining: false }) };
    const client = new InvocationClient(options, await InvocationClient.openLane(options, options.queueName ?? INVOCATION_QUEUE));
    if (options.placement !== false) client.watchWorkers();
    return client;
  }

  /** Keeps the workers' reports (worker/report.ts) fresh for placement, off the request path. */
  private watchWorkers(): void {
    const refresh = async () => {
      try {
        const all = await this.options.connection.hgetall(workersKey(this.options.prefix));
        this.reports = Object.values(all).map((v) => JSON.parse(v) as WorkerReport);
        this.hear(this.reports);
      } catch {
        this.reports = [];
        return;
      }
      await this.closeLanesOfGoneWorkers();
    };
    void refresh();
    this.reportTimer = setInterval(() => void refresh(), 200);
    this.reportTimer.unref();
  }

  private hear(reports: WorkerReport[]): void {
    const now = Date.now();
    const ids = new Set<string>();
    for (const r of reports) {
      ids.add(r.id);
      if (this.heard.get(r.id)?.at !== r.at) this.heard.set(r.id, { at: r.at, since: now });
    }
    for (const id of this.heard.keys()) if (!ids.has(id)) this.heard.delete(id);
    this.lastRefreshAt = now;
  }

  /**
   * Silent over this client's last refreshes, so that a pause of this client's own event
   * loop is not taken for the worker's silence. A worker without a report (it stopped, and
   * finishes what it runs) is not silent: its lock tells.
   */
  private silent(workerId: string | null): boolean {
    const heard = workerId ? this.heard.get(workerId) : undefined;
    return heard !== undefined && Date.now() - this.lastRefreshAt < LOST_CHECK_MS && this.lastRefreshAt - heard.since >= SILENT_MS;
  }

  /**
   * A worker whose report is gone (it stopped, or the scheduler found it dead) gets no more
   * invocations: once nothing waits on its lane, the lane's connection is closed. Worker
   * ids are per process, so without this a long-lived gateway would keep one connection
   * per worker that ever lived.
   */
  private async closeLanesOfGoneWorkers(): Promise<void> {
    const live = new Set(this.reports.map((r) => r.queue));
    for (const [name, pending] of this.lanes) {
      if (live.has(name)) continue;
      const lane = await pending.catch(() => undefined);
      if (!lane || (this.laneUsers.get(name) ?? 0) > 0 || this.lanes.get(name) !== pending) continue;
      this.lanes.delete(name);
      await this.closeLane(lane);
    }
  }

  private async closeLane(lane: Lane): Promise<void> {
    await lane.events.close();
    await lane.queue.close();
    lane.eventsConnection.disconnect();
  }

  /** How many worker lanes are open (tests). */
  get openLanes(): number {
    return this.lanes.size;
  }

  /** The worker queue placement chooses for this function, or the shared queue. */
  private laneFor(name: string | undefined): Promise<Lane> {
    if (!name) return Promise.resolve(this.shared);
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = InvocationClient.openLane(this.options, name);
      lane.then((l) => this.listen(l), () => this.lanes.delete(name));
      this.lanes.set(name, lane);
    }
    return lane;
  }

  get pending(): number {
    return this.waiters.size;
  }

  private settle(jobId: string, reply: Reply): void {
    const waiter = this.waiters.get(jobId);
    if (waiter) {
      this.waiters.delete(jobId);
      waiter(reply);
    }
  }

  /**
   * Withdraws the started jobs whose worker is gone (see the header). A job lives in the
   * queue it was added to, or in the shared queue once a stopping worker or the scheduler
   * handed it over (common/queue-handover.ts): both are looked at.
   */
  private async checkLost(): Promise<void> {
    if (this.checking || this.closed) return;
    this.checking = true;
    try {
      const now = Date.now();
      const due = [...this.watched].filter(([, w]) => now - w.since >= LOST_CHECK_MS);
      if (!due.length) return;
      const looks = due.flatMap(([id, w]) => this.queuesOf(w.queue).map((queue) => ({ id, queue })));
      const p = this.options.connection.pipeline();
      for (const { id, queue } of looks) {
        p.hmget(queue.toKey(id), 'processedOn', 'finishedOn', 'pb');
        p.exists(`${queue.toKey(id)}:lock`);
      }
      const res = (await p.exec()) ?? [];
      for (const [i, { id, queue }] of looks.entries()) {
        const [processedOn, finishedOn, processedBy] = (res[2 * i]?.[1] ?? []) as (string | null)[];
        const locked = res[2 * i + 1]?.[1] === 1;
        if (!processedOn || finishedOn || !this.watched.has(id)) continue;
        if (locked ? this.silent(processedBy ?? null) : (await this.claim(id, queue)) === 'lost') this.settle(id, { kind: 'worker-lost' });
      }
    } catch (err) {
      if (!this.closed) console.error(`[faasbox] invocation client: looking for lost workers: ${(err as Error).message}`);
    } finally {
      this.checking = false;
    }
  }

  private queuesOf(queue: Queue): Queue[] {
    return queue === this.shared.queue ? [queue] : [queue, this.shared.queue];
  }

  /**
   * Removes a job that no live worker holds: 'unstarted' (nobody took it), 'lost' (it
   * started, and its worker's lock lapsed), 'held' (a worker holds it: its reply will come).
   * A job found in neither queue finished (its reply is on its way) and counts as removed.
   */
  private async claim(id: string, added: Queue): Promise<'unstarted' | 'lost' | 'held'> {
    for (const queue of this.queuesOf(added)) {
      const [timestamp, processedOn] = await this.options.connection.hmget(queue.toKey(id), 'timestamp', 'processedOn');
      if (!timestamp) continue;
      // Queue.remove refuses a job locked by a worker, which is exactly "a live worker has it".
      if ((await queue.remove(id)) !== 1) return 'held';
      return processedOn ? 'lost' : 'unstarted';
    }
    return 'unstarted';
  }

  /**
   * Add an async job: once this resolves the invocation is durable in Redis. Async jobs
   * always go to the shared queue: a 202 must survive the crash of any one worker.
   */
  async enqueue(job: InvocationJob): Promise<void> {
    await this.shared.queue.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job));
  }

  /**
   * Add a sync job and wait for its reply. If no worker has started it by job.deadline it is
   * withdrawn ('no-capacity'); once started, the reply may take execBudgetMs more, unless
   * its worker dies first ('worker-lost', within the worker's lock period).
   */
  async invokeSync(job: InvocationJob, execBudgetMs: number, want?: PlacementWant): Promise<SyncOutcome> {
    if (this.closed) throw new Error('invocation client is closed');
    const id = job.invocationId;
    let deliver!: (reply: Reply) => void;
    const reply = new Promise<Reply>((resolve) => (deliver = resolve));
    this.waiters.set(id, deliver);
    try {
      const name = want ? place(this.reports, want, Date.now()) : undefined;
      // Counted before the lane is awaited, so that it cannot be closed under this call.
      if (name) this.laneUsers.set(name, (this.laneUsers.get(name) ?? 0) + 1);
      try {
        const lane = await this.laneFor(name);
        await lane.queue.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job));
        this.watched.set(id, { queue: lane.queue, since: Date.now() });
        const early = await raceTimer(reply, job.deadline - Date.now());
        if (early) return early;
        const claimed = await this.claim(id, lane.queue);
        // A job that failed right at the deadline is still removable; its reply wins.
        if (claimed === 'unstarted') return (await raceTimer(reply, 0)) ?? { kind: 'no-capacity' };
        if (claimed === 'lost') return (await raceTimer(reply, 0)) ?? { kind: 'worker-lost' };
        return (await raceTimer(reply, execBudgetMs)) ?? { kind: 'timeout' };
      } finally {
        if (name) {
          const n = (this.laneUsers.get(name) ?? 1) - 1;
          if (n > 0) this.laneUsers.set(name, n);
          else this.laneUsers.delete(name);
        }
      }
    } finally {
      this.waiters.delete(id);
      this.watched.delete(id);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Callers still waiting would otherwise hang until their timers; their jobs may still
    // run, and the records will show the outcome.
    for (const id of [...this.waiters.keys()]) this.settle(id, { kind: 'failed', reason: 'gateway is shutting down' });
    if (this.reportTimer) clearInterval(this.reportTimer);
    clearInterval(this.lostTimer);
    const lanes = [this.shared, ...(await Promise.allSettled([...this.lanes.values()])).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))];
    for (const lane of lanes) await this.closeLane(lane);
    this.options.addConnection?.disconnect();
  }
}

/** The promise's value, or undefined if ms elapse first. */
async function raceTimer<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms), undefined)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
