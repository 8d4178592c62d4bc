/**
 * The scheduler service. Each tick it does two things from what workers report several
 * times a second (worker/report.ts):
 *
 * - Keeps placement honest: a worker whose report went stale is presumed dead, its
 *   report is dropped so the gateway stops sending it work, and its own queue becomes an
 *   orphan (`<prefix>:orphan-queues`, so a restarted scheduler carries on; a stopping
 *   worker registers its own queue there too): every tick, the invocations waiting
 *   there, and those it had started once their lock has lapsed (nobody renews it), are
 *   moved to the shared queue, where any live worker takes them (common/queue-handover.ts).
 *   Once the orphan queue is empty it is obliterated. Without this, a sync invocation
 *   routed to a worker that died would wait until its deadline, and an async one would
 *   wait forever. An async invocation is delivered at least once: a started one runs
 *   again elsewhere, as with BullMQ's own stalled jobs; a started sync one is answered
 *   WORKER_LOST instead (common/queue.ts).
 * - Runs the triggers (scheduler/triggers/runner.ts): queues, streams and schedules as
 *   sources of async invocations.
 *
 * All three are the leader's work: one scheduler at a time holds the lease
 * (scheduler/leader.ts); the others tick only to take it over when it lapses.
 *
 * - Sizes every live worker's pools (common/policy/sizing.ts): from the worker's demand
 *   report plus the invocations queued for it, the warm containers per function version
 *   and stem cells per shape it should keep, written to `<prefix>:pool-targets`. Queued
 *   means waiting in BullMQ, not yet taken by a worker: per function, counted over the
 *   first QUEUED_SCAN waiting jobs of the worker's own queue, plus an even share of those
 *   waiting in the shared queue (any live worker may take them). Invocations a worker
 *   took but that still wait for pool capacity are in its in-flight count already.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { DEFAULT_STORAGE_LIMITS } from '../common/limits.js';
import { LeaderLease } from './leader.js';
import { DEFAULT_DESTINATION_SETTINGS, DestinationWorker, type DestinationSettings } from './destinations.js';
import { HostPolicy, type HostPolicySettings } from '../common/delivery/host-policy.js';
import type { SecretBox } from '../common/secrets.js';
import { reportRedisErrors } from '../common/redis-errors.js';
import { TriggerRunner, type RunnerConfig } from './triggers/runner.js';
import { INVOCATION_QUEUE, type InvocationJob } from '../common/queue.js';
import { handOver, orphanQueuesKey } from '../common/queue-handover.js';
import { versionKey } from '../common/keys.js';
import { workersKey, type WorkerReport } from '../common/policy/placement.js';
import {
  DEFAULT_SIZING,
  decide,
  demandKey,
  emptyHistory,
  observe,
  poolTargetsKey,
  validateSizing,
  type DemandReport,
  type PoolTargets,
  type SizingConfig,
  type WorkerHistory,
} from '../common/policy/sizing.js';

/** Waiting jobs looked at per queue and tick to count queued invocations per function. */
const QUEUED_SCAN = 500;

export interface SchedulerConfig {
  redisUrl: string;
  prefix: string;
  /** How often to look at the reports. */
  intervalMs?: number;
  /** A report older than this means the worker is gone. */
  staleMs?: number;
  /** Invocations moved out of a dead worker's own queue. */
  onRescue?: (e: { queue: string; moved: number }) => void;
  /** How workers' pools are sized (defaults: DEFAULT_SIZING). */
  sizing?: Partial<SizingConfig>;
  onTargets?: (worker: string, targets: PoolTargets) => void;
  /** The leader's lease: another scheduler takes over this long after the leader's last renewal (default 5000). */
  leaseMs?: number;
  /** false: no triggers here; else their settings (defaults: the gateway's bounds on an invoke). */
  triggers?: false | Partial<Omit<RunnerConfig, 'redisUrl' | 'prefix' | 'metrics'>>;
  /** Where the trigger series go (default: a registry of the scheduler's own). */
  metrics?: Registry;
  onLeader?: (leading: boolean) => void;
  /**
   * false: no delivery worker here; else the callback host policy (FAASBOX_CALLBACK_ALLOW,
   * FAASBOX_CALLBACK_DENY) and the delivery retries (scheduler/destinations.ts).
   */
  destinations?: false | { policy?: HostPolicySettings; settings?: Partial<DestinationSettings> };
  /** Signs callbacks and opens destination functions' sealed env (the deployment's key). */
  secrets?: SecretBox;
}

export interface RunningScheduler {
  /** One pass now (tests; the loop runs by itself). */
  tick(): Promise<void>;
  /** Whether this scheduler holds the lease now. */
  readonly isLeader: boolean;
  /** Its holder id in the lease (host:pid:random). */
  readonly leaseId: string;
  close(): Promise<void>;
}

/** What a trigger's event may be, as the gateway's invoke body: 6 MiB, nesting 64 deep; 6 h to start. */
const TRIGGER_DEFAULTS: Omit<RunnerConfig, 'redisUrl' | 'prefix' | 'metrics'> = {
  maxEventBytes: 6 * 1024 * 1024,
  maxJsonDepth: 64,
  maxEventAgeMs: 6 * 3600 * 1000,
  queuedBytesPerFunction: DEFAULT_STORAGE_LIMITS.queuedBytesPerFunction,
};

export async function startScheduler(cfg: SchedulerConfig): Promise<RunningScheduler> {
  // Built first: a malformed allow or deny entry refuses the start before anything is opened.
  const callbackPolicy = cfg.destinations === false ? undefined : new HostPolicy(cfg.destinations?.policy);
  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
  reportRedisErrors(redis, 'redis', (line) => console.error(`scheduler: ${line}`));
  const shared = new Queue<InvocationJob>(INVOCATION_QUEUE, { connection: redis, prefix: cfg.prefix });
  const staleMs = cfg.staleMs ?? 5000;
  const sizing = validateSizing({ ...DEFAULT_SIZING, ...cfg.sizing });
  let running: Promise<void> | undefined;
  let closed = false;
  const histories = new Map<string, WorkerHistory>();
  /** Open handles on workers' own queues, for counting what waits there. */
  const ownQueues = new Map<string, Queue<InvocationJob>>();

  const orphansKey = orphanQueuesKey(cfg.prefix);

  async function rescueOrphans(): Promise<void> {
    for (const name of await redis.smembers(orphansKey)) {
      const { moved, empty } = await handOver(redis, cfg.prefix, name, shared);
      if (moved) cfg.onRescue?.({ queue: name, moved });
      if (empty) await redis.srem(orphansKey, name);
    }
  }

  /** name@version -> invocations waiting in a queue (over its first QUEUED_SCAN). */
  async function queuedByFunction(q: Queue<InvocationJob>): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const job of await q.getWaiting(0, QUEUED_SCAN - 1)) {
      if (!job?.data) continue;
      const key = versionKey(job.data.function, job.data.version);
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  async function size(live: WorkerReport[]): Promise<void> {
    const demands = await redis.hgetall(demandKey(cfg.prefix));
    const liveIds = new Set(live.map((r) => r.id));
    // Demand of workers that are gone (their report was dropped) is dropped too.
    const gone = Object.keys(demands).filter((id) => !liveIds.has(id));
    if (gone.length) await redis.hdel(demandKey(cfg.prefix), ...gone);
    const reporting: { report: WorkerReport; demand: DemandReport }[] = [];
    for (const report of live) {
      const raw = demands[report.id];
      if (!raw) continue; // a worker that reports no demand sizes itself
      try {
        reporting.push({ report, demand: JSON.parse(raw) as DemandReport });
      } catch {
        await redis.hdel(demandKey(cfg.prefix), report.id);
      }
    }
    const sharedQueued = reporting.length ? await queuedByFunction(shared) : {};
    const targets: Record<string, string> = {};
    for (const { report, demand } of reporting) {
      let own = ownQueues.get(report.id);
      if (!own) ownQueues.set(report.id, (own = new Queue<InvocationJob>(report.queue, { connection: redis, prefix: cfg.prefix })));
      const queued = await queuedByFunction(own);
      for (const [key, n] of Object.entries(sharedQueued)) queued[key] = (queued[key] ?? 0) + n / reporting.length;
      const history = observe(histories.get(report.id) ?? emptyHistory(), demand, queued, sizing);
      histories.set(report.id, history);
      const decision = decide(history, demand.at, sizing);
      targets[report.id] = JSON.stringify(decision);
      cfg.onTargets?.(report.id, decision);
    }
    const sized = new Set(Object.keys(targets));
    for (const [id, q] of ownQueues) {
      if (sized.has(id)) continue;
      ownQueues.delete(id);
      histories.delete(id);
      await q.close();
    }
    const outdated = (await redis.hkeys(poolTargetsKey(cfg.prefix))).filter((id) => !sized.has(id));
    if (outdated.length) await redis.hdel(poolTargetsKey(cfg.prefix), ...outdated);
    if (sized.size) await redis.hset(poolTargetsKey(cfg.prefix), targets);
  }

  async function tick(): Promise<void> {
    const all = await redis.hgetall(workersKey(cfg.prefix));
    const now = Date.now();
    const live: WorkerReport[] = [];
    for (const [id, raw] of Object.entries(all)) {
      let report: WorkerReport;
      try {
        report = JSON.parse(raw) as WorkerReport;
      } catch {
        await redis.hdel(workersKey(cfg.prefix), id);
        continue;
      }
      if (now - report.at < staleMs) {
        live.push(report);
        continue;
      }
      // Orphaned before the report goes: a crash in between leaves the report, seen again.
      await redis.sadd(orphansKey, report.queue);
      await redis.hdel(workersKey(cfg.prefix), id);
    }
    await rescueOrphans();
    await size(live);
  }

  // Every scheduler delivers, leader or not: BullMQ shares the deliveries queue among them.
  const triggerBounds = { ...TRIGGER_DEFAULTS, ...(cfg.triggers || {}) };
  const destinations = callbackPolicy
    ? await DestinationWorker.start({
        redisUrl: cfg.redisUrl,
        prefix: cfg.prefix,
        policy: callbackPolicy,
        secrets: cfg.secrets,
        settings: { ...DEFAULT_DESTINATION_SETTINGS, ...(cfg.destinations || {}).settings },
        maxEventAgeMs: triggerBounds.maxEventAgeMs,
        queuedBytesPerFunction: triggerBounds.queuedBytesPerFunction,
        ...(cfg.metrics ? { metrics: cfg.metrics } : {}),
        log: (line) => console.error(`[faasbox] scheduler: ${line}`),
      })
    : undefined;

  const lease = new LeaderLease(redis, cfg.prefix, cfg.leaseMs ?? 5000);
  let runner: TriggerRunner | undefined;
  let runnerStarting: Promise<void> | undefined;

  /** Starts or stops the trigger runner with the lease; a failed start is tried again next tick. */
  async function followLease(leading: boolean): Promise<void> {
    if (cfg.triggers === false) return;
    if (leading && !runner) {
      runnerStarting ??= TriggerRunner.start(redis, { ...TRIGGER_DEFAULTS, ...cfg.triggers, redisUrl: cfg.redisUrl, prefix: cfg.prefix, ...(cfg.metrics ? { metrics: cfg.metrics } : {}) })
        .then((r) => void (runner = r))
        .finally(() => (runnerStarting = undefined));
      await runnerStarting;
    } else if (!leading && runner) {
      const r = runner;
      runner = undefined;
      await r.close();
    }
  }

  async function leaderTick(): Promise<void> {
    const was = lease.isLeader;
    const leading = await lease.renew();
    if (leading !== was) cfg.onLeader?.(leading);
    await followLease(leading);
    if (leading) await tick();
  }

  const timer = setInterval(() => {
    if (closed) return;
    running ??= leaderTick()
      .catch((err: Error) => console.error(`[faasbox] scheduler: ${err.message}`))
      .finally(() => (running = undefined));
  }, cfg.intervalMs ?? 1000);
  timer.unref();
  // The first tick now, not an interval later: a scheduler started alone leads at once.
  running = leaderTick()
    .catch((err: Error) => console.error(`[faasbox] scheduler: ${err.message}`))
    .finally(() => (running = undefined));
  await running;

  return {
    tick,
    get isLeader() {
      return lease.isLeader;
    },
    leaseId: lease.id,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await running;
      await runnerStarting?.catch(() => {});
      await runner?.close();
      await destinations?.close();
      await lease.release();
      for (const q of ownQueues.values()) await q.close();
      await shared.close();
      await redis.quit().catch(() => {});
    },
  };
}
