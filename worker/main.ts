/**
 * The worker service: consumes invocation jobs from Redis (BullMQ), runs each in a
 * container from the pool under the function's limits, records output and outcome.
 * One per machine (several may share a machine with separate state dirs).
 *
 * This file only wires: the invocation runner is invoker.ts, the function-version cache
 * and its pub/sub invalidation versions.ts, the public codes of failures errors.ts, the
 * reports for placement and sizing report.ts.
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { UnpackBounds } from '../common/archive/index.js';
import { ConcurrencyLimiter } from '../common/concurrency.js';
import { LIMITS } from '../common/function-spec.js';
import { InvocationStore } from '../common/invocations.js';
import type { StorageLimits } from '../common/limits.js';
import { forgetFunction } from '../common/metrics.js';
import { workerQueueName } from '../common/policy/placement.js';
import { INVOCATION_QUEUE, type InvocationJob, type InvocationResult } from '../common/queue.js';
import { handOver, orphanQueuesKey } from '../common/queue-handover.js';
import { QueuedBytes } from '../common/queued-bytes.js';
import { FunctionRegistry } from '../common/registry.js';
import type { SecretBox } from '../common/secrets.js';
import { buildImage } from '../images/build.js';
import { importRuntimeImage } from './engine/image/import.js';
import { imagesDirOf } from './engine/image/paths.js';
import { withStoreLock } from './engine/image/store-lock.js';
import { RUNTIME_COMMAND } from '../images/protocol.js';
import { Engine, type EngineOptions } from './engine/engine.js';
import { CodeStore } from './instance/code.js';
import type { RuntimeImage } from './instance/instance.js';
import { Invoker } from './invoker.js';
import { WorkerMetrics } from './metrics.js';
import type { SizingConfig } from './pool/policy.js';
import { Pool, type PoolEvent } from './pool/pool.js';
import { Reporter, TargetsFeed, reportOf } from './report.js';
import { FunctionVersions } from './versions.js';
import { WorkerHealth } from './health.js';
import { ImageRequestServer } from './images.js';
import type { PullImage } from './engine/image/pull-types.js';
import type { NetworkSettings } from './engine/network/options.js';
import { DeadLetters } from '../common/delivery/dead-letters.js';
import { Settlement } from '../common/delivery/settle.js';
import { DestinationHandoff } from '../common/delivery/destinations.js';
import { DEFAULT_DRAIN_GRACE_MS, withinGrace } from '../common/drain.js';
import { reportRedisErrors } from '../common/redis-errors.js';

export interface WorkerConfig {
  redisUrl: string;
  /** Key prefix shared with the gateway. */
  prefix: string;
  stateDir: string;
  workerId?: string;
  /** Memory (MB) the worker may give to containers. */
  budgetMb: number;
  /** false: every invocation boots a fresh container (measures the cold floor). */
  pools: boolean;
  sizing?: Partial<SizingConfig>;
  cgroupRoot?: string;
  /** The engine's other settings (the CLI reads them from the environment: cli/engine-env.ts). */
  engine?: Pick<EngineOptions, 'seeds' | 'zygote' | 'initBin'>;
  /** Bridge mode's subnet, deny list and nameservers (FAASBOX_NET_*); absent: mode none only. A bad value refuses the start. */
  network?: NetworkSettings | undefined;
  onPoolEvent?: (e: PoolEvent) => void;
  /** Registry for the worker's metrics (shared with the gateway in `faasbox up`). */
  metrics?: Registry;
  /** Opens functions' sealed env values (common/secrets.ts); the gateway's key. */
  secrets?: SecretBox;
  /**
   * How long a job stays locked to this worker without a renewal (renewed every half of
   * it while the job runs). When the worker dies, another one takes the job back after
   * at most this plus its stalled-check interval (half of it). BullMQ's default is 30 s.
   */
  lockMs?: number;
  /** What a package may unpack to: the gateway's packageBounds (default DEFAULT_UNPACK_BOUNDS). */
  packageBounds?: UnpackBounds;
  /** Idle warm containers are frozen after this long (pool.ts DEFAULT_FREEZE_GRACE_MS); 0: never. */
  freezeGraceMs?: number;
  /** Every container in a user namespace of its own (engine/userns/; FAASBOX_USERNS=1). */
  userns?: boolean;
  /** Longest result a function may answer with (bytes; default DEFAULT_MAX_RESULT_BYTES, 6 MiB): past it, RESULT_TOO_LARGE. */
  maxResultBytes?: number;
  /** What each function may hold in Redis (the worker applies recordsPerFunction to the records it makes). */
  limits?: Partial<StorageLimits>;
  /** The image puller for POST /v1/images (default: engine/image/puller.ts loadPuller). */
  puller?: () => Promise<PullImage>;
  /** close(): how long running invocations may take to finish before they are returned to the queue (default DEFAULT_DRAIN_GRACE_MS). */
  drainGraceMs?: number;
}

/**
 * A crashed worker's async invocations resume elsewhere within about 15 s; the callers of
 * its sync ones are answered WORKER_LOST within about 4 s (common/lost-jobs.ts).
 */
export const DEFAULT_LOCK_MS = 10_000;

export interface RunningWorker {
  id: string;
  pool: Pool;
  engine: Engine;
  metrics: Registry;
  /** The BullMQ consumers: of the shared queue and of this worker's own queue. */
  consumers: { shared: Worker<InvocationJob, InvocationResult>; own: Worker<InvocationJob, InvocationResult> };
  /** What /healthz and /readyz answer (cli/metrics-server.ts). */
  health: WorkerHealth;
  /**
   * The drain (SIGTERM): takes no new jobs, lets the running invocations finish within
   * the grace period (drainGraceMs), returns the rest to the queue (Invoker.returnAll),
   * then tears down its containers and connections. Resolves with how many were returned.
   * `graceMs` shortens the grace for this close (the dev stack spends one grace on
   * the gateway's drain and the worker's together).
   */
  close(opts?: { graceMs?: number }): Promise<{ returned: number }>;
}

/**
 * Builds (or finds) the runtime images this worker serves, and takes their layers from the
 * image store (imported as OCI images once per build), as any pulled image's.
 */
export async function runtimeImages(stateDir: string): Promise<Record<string, RuntimeImage>> {
  // Shared: a prune (which would find the blobs before their record) waits for the import.
  const [node, python] = await withStoreLock(imagesDirOf(stateDir), 'shared', async () => [
    await importRuntimeImage(imagesDirOf(stateDir), await buildImage('nodejs20', path.join(stateDir, 'images'))),
    await importRuntimeImage(imagesDirOf(stateDir), await buildImage('python3', path.join(stateDir, 'images'))),
  ]);
  return {
    nodejs20: { name: 'nodejs20', layers: node.layers, args: [...RUNTIME_COMMAND.nodejs20] },
    python3: { name: 'python3', layers: python.layers, args: [...RUNTIME_COMMAND.python3] },
  };
}

export async function startWorker(cfg: WorkerConfig): Promise<RunningWorker> {
  const id = cfg.workerId ?? `${hostname()}-${process.pid}`;
  const log = (line: string) => console.error(`worker ${id}: ${line}`);
  const engine = await Engine.open({ ...cfg.engine, stateDir: cfg.stateDir, ...(cfg.cgroupRoot ? { cgroupRoot: cfg.cgroupRoot } : {}), ...(cfg.userns ? { userns: { byDefault: true } } : {}), ...(cfg.network ? { network: cfg.network } : {}) });
  // Whatever a crashed predecessor on this state dir left behind goes first.
  await engine.gc();
  const images = await runtimeImages(cfg.stateDir);
  const code = new CodeStore(cfg.stateDir, cfg.packageBounds);
  const metricsRegistry = cfg.metrics ?? new Registry();
  if (!cfg.metrics) collectDefaultMetrics({ register: metricsRegistry });
  let poolRef: Pool | undefined;
  const metrics = new WorkerMetrics(metricsRegistry, () => poolRef);
  // The scheduler's pool sizes for this worker; polled once the Reporter has a connection.
  const targets = new TargetsFeed(cfg.prefix, id);
  // A stem cell per runtime at the default size from the start; other shapes get stem
  // cells once the scheduler sees specialisations wanted for them.
  const stemShapes = cfg.pools ? Object.keys(images).map((runtime) => ({ runtime, memoryMb: LIMITS.memoryMb.default })) : [];
  let health: WorkerHealth | undefined;
  const pool = new Pool({
    engine,
    images,
    budgetMb: cfg.budgetMb,
    enabled: cfg.pools,
    stemShapes,
    ...(cfg.sizing ? { sizing: cfg.sizing } : {}),
    targets: () => targets.current(),
    ...(cfg.freezeGraceMs !== undefined ? { freezeGraceMs: cfg.freezeGraceMs } : {}),
    usernsByDefault: cfg.userns ?? false,
    // Bridge functions take stem cells with their network made ahead where the engine has one.
    bridgeStems: engine.hasNetwork,
    log,
    onEvent: (e) => {
      metrics.onPoolEvent(e);
      // A booted stem cell turns idle just after its event.
      if (e.type === 'created') setImmediate(() => health?.observe());
      cfg.onPoolEvent?.(e);
    },
  });
  poolRef = pool;
  pool.start();

  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null, enableAutoPipelining: true });
  reportRedisErrors(redis, 'redis', log);
  const registry = new FunctionRegistry(redis, cfg.prefix, cfg.secrets);
  const versions = new FunctionVersions(registry, code, log);
  versions.sweep();
  const sub = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
  reportRedisErrors(sub, 'redis (function events)', log);
  await versions.listen(sub, {
    // A deleted function's warm containers go, and its name from /metrics; its code layers
    // after its idle containers, unless another function uses the code.
    deleted: (name, digests) => {
      void forgetFunction(metricsRegistry, name);
      void pool.dropFunction(name).then(() => versions.dropLayers(digests));
    },
    replaced: (name) => void pool.dropFunction(name),
    // A bridge function's first invocation finds a bridge stem cell made for its shape.
    deployed: (target) => pool.expect(target),
  });

  const invocations = new InvocationStore(redis, cfg.prefix, undefined, cfg.limits?.recordsPerFunction);
  const queued = new QueuedBytes(redis, cfg.prefix);
  const deadLetters = new DeadLetters(redis, cfg.prefix, cfg.limits?.deadLettersPerFunction);
  // Outcomes go to their destinations as jobs of their own, sent by the scheduler (scheduler/destinations.ts).
  const handoff = new DestinationHandoff(redis, cfg.prefix);
  const invoker = new Invoker({
    workerId: id,
    pool,
    code,
    versions,
    invocations,
    queued,
    // Async attempts end here: retried later, or settled (common/delivery/settle.ts).
    settlement: new Settlement({ invocations, deadLetters, queued, onSettled: handoff.onSettled, log }),
    limiter: new ConcurrencyLimiter(redis, cfg.prefix),
    metrics,
    ...(cfg.maxResultBytes ? { maxResultBytes: cfg.maxResultBytes } : {}),
    log,
  });
  // Concurrency bounded by the memory budget: at most one invocation per smallest container.
  const concurrency = Math.max(1, Math.floor(cfg.budgetMb / 64));
  // Two consumers: the shared queue every worker drains, and this worker's own queue, to
  // which the gateway sends invocations that can find a warm container or stem cell here.
  const ownQueue = workerQueueName(INVOCATION_QUEUE, id);
  const connections: Redis[] = [];
  const consumers = [INVOCATION_QUEUE, ownQueue].map((name) => {
    const connection = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
    connections.push(connection);
    const lockDuration = cfg.lockMs ?? DEFAULT_LOCK_MS;
    const w = new Worker<InvocationJob, InvocationResult>(name, invoker.process, {
      connection,
      prefix: cfg.prefix,
      // Stored with each job it takes (processedBy): a gateway whose caller waits for the
      // job sees this worker's reports stop if it dies (common/invocation-client.ts).
      name: id,
      concurrency,
      lockDuration,
      stalledInterval: lockDuration / 2,
    });
    w.on('error', (err) => console.error(`worker ${id} (${name}): ${err.message}`));
    return w;
  });
  const probes = new WorkerHealth({ redis, slots: () => pool.slots(), stemShapes, consuming: () => consumers.every((w) => w.isRunning() && !w.closing) });
  health = probes;
  const reporter = new Reporter(redis, cfg.prefix, () => reportOf(id, ownQueue, pool, cfg.budgetMb, invoker.inflight), { demand: () => pool.demandReport(), targets });
  reporter.start();
  // Image pulls and listings the gateway asks for (POST/GET /v1/images).
  const imageRequests = new ImageRequestServer({ redis, prefix: cfg.prefix, workerId: id, stateDir: cfg.stateDir, secrets: cfg.secrets, log, ...(cfg.puller ? { puller: cfg.puller } : {}) });
  await imageRequests.start();

  return {
    id,
    pool,
    engine,
    metrics: metricsRegistry,
    consumers: { shared: consumers[0]!, own: consumers[1]! },
    health: probes,
    async close(opts: { graceMs?: number } = {}) {
      probes.markStopping();
      // Out of placement first: gateways stop sending work here at their next look at the
      // reports. The queue becomes an orphan at once, so that what a gateway still adds to
      // it later, or what is left if this worker dies while it stops, moves on the
      // scheduler's next tick (common/queue-handover.ts).
      await reporter.stop(id);
      await imageRequests.close();
      await redis.sadd(orphanQueuesKey(cfg.prefix), ownQueue).catch(() => {});
      // No new jobs from here; the ones running finish within the grace period.
      const stopping = Promise.all(consumers.map((w) => w.close()));
      // What waits in this worker's own queue is served elsewhere now, not at its deadline.
      const shared = new Queue<InvocationJob>(INVOCATION_QUEUE, { connection: redis, prefix: cfg.prefix });
      const handOverOwn = () => handOver(redis, cfg.prefix, ownQueue, shared).catch((err: Error) => console.error(`worker ${id}: handing over ${ownQueue}: ${err.message}`));
      let returned = 0;
      try {
        await handOverOwn();
        const graceMs = opts.graceMs ?? cfg.drainGraceMs ?? DEFAULT_DRAIN_GRACE_MS;
        if (!(await withinGrace(stopping, graceMs))) {
          // What still runs is stopped and goes back to its queue, for another worker; the
          // consumers' close then returns as soon as their processors have let go.
          const running = invoker.inflight;
          returned = await invoker.returnAll();
          log(`drain: ${running} invocations still running after ${graceMs} ms; stopped and returned to the queue`);
          await stopping;
        }
        // Whatever arrived meanwhile (or was returned to this worker's own queue) moves
        // too, and the queue's keys go. It stays an orphan for the scheduler, which forgets
        // it once it finds it empty.
        await handOverOwn();
      } finally {
        await shared.close().catch(() => {});
        await handoff.close().catch(() => {});
        await sub.quit().catch(() => {});
        await pool.close();
        // Every container is gone with the pool, so the engine's fork server exits now too.
        await engine.close();
        await redis.quit().catch(() => {});
        for (const c of connections) await c.quit().catch(() => {});
      }
      return { returned };
    },
  };
}
