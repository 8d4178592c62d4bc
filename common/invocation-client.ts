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
 * A sync job whose worker dies while it runs it gets no reply: common/lost-jobs.ts finds
 * it, and its caller is answered 'worker-lost' within seconds.
 */
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { StorageLimits } from './limits.js';
import { INVOCATION_JOB_NAME, INVOCATION_QUEUE, invocationJobOptions, type InvocationJob } from './queue.js';
import { place, workersKey, type PlacementWant, type WorkerReport } from './policy/placement.js';
import { LostJobs } from './lost-jobs.js';

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

export interface InvocationClientOptions {
  /** A connection for adding jobs; shared, not closed by the client. */
  connection: Redis;
  /** Key prefix of the deployment (BullMQ `prefix`). */
  prefix: string;
  queueName?: string;
  /** false: every job goes to the shared queue (no placement). */
  placement?: boolean;
  /** How many finished jobs BullMQ keeps (default: DEFAULT_STORAGE_LIMITS). */
  kept?: Pick<StorageLimits, 'completedJobsKept' | 'failedJobsKept'>;
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
  private readonly lost: LostJobs;

  private constructor(
    private readonly options: InvocationClientOptions,
    private readonly shared: Lane,
  ) {
    this.listen(shared);
    this.lost = new LostJobs(options.connection, shared.queue, (id) => this.settle(id, { kind: 'worker-lost' }));
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
        this.lost.hear(this.reports);
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
   * Add an async job: once this resolves the invocation is durable in Redis. Async jobs
   * always go to the shared queue: a 202 must survive the crash of any one worker.
   */
  async enqueue(job: InvocationJob): Promise<void> {
    await this.shared.queue.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job, this.options.kept));
  }

  /**
   * Add a sync job and wait for its reply. If no worker has started it by job.deadline it is
   * withdrawn ('no-capacity'); once started, the reply may take execBudgetMs more, unless
   * its worker dies first ('worker-lost').
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
        await lane.queue.add(INVOCATION_JOB_NAME, job, invocationJobOptions(job, this.options.kept));
        this.lost.watch(id, lane.queue);
        const early = await raceTimer(reply, job.deadline - Date.now());
        if (early) return early;
        const claimed = await this.lost.claim(id, lane.queue);
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
      this.lost.unwatch(id);
    }
  }

  /** Remove an async job that no worker has taken yet; false if it is running or finished. */
  async withdraw(jobId: string, queue: Queue = this.shared.queue): Promise<boolean> {
    // Queue.remove refuses a job locked by a worker, which is exactly "already started".
    return (await queue.remove(jobId)) === 1;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Callers still waiting would otherwise hang until their timers; their jobs may still
    // run, and the records will show the outcome.
    for (const id of [...this.waiters.keys()]) this.settle(id, { kind: 'failed', reason: 'gateway is shutting down' });
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.lost.stop();
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
