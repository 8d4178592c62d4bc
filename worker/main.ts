/**
 * The worker service: consumes invocation jobs from Redis (BullMQ), runs each in a
 * container from the pool under the function's limits, records output and outcome.
 * One per machine (several may share a machine with separate state dirs).
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Engine } from './engine/engine.js';
import { CodeStore } from './instance/code.js';
import type { UnpackBounds } from '../common/archive/index.js';
import { Pool, NoCapacityError, type FunctionTarget, type PoolEvent } from './pool/pool.js';
import type { InvokeOutcome, RuntimeImage } from './instance/instance.js';
import { buildImage } from '../images/build.js';
import { RUNTIME_COMMAND } from '../images/protocol.js';
import { FunctionRegistry, parseFunctionEvent, type FunctionVersion } from '../common/registry.js';
import { LIMITS, loadTimeoutMs, startedBudgetMs } from '../common/function-spec.js';
import { InvocationStore, OUTPUT_LIMIT_BYTES, type NewInvocation } from '../common/invocations.js';
import type { StorageLimits } from '../common/limits.js';
import { QueuedBytes } from '../common/queued-bytes.js';
import { OutputBatcher } from './instance/output.js';
import { ConcurrencyLimiter } from '../common/concurrency.js';
import { INVOCATION_QUEUE, requestOf, type InvocationJob, type InvocationResult } from '../common/queue.js';
import { WorkerLostError, isErrorCode, type ErrorInfo } from '../common/errors.js';
import type { SizingConfig } from './pool/policy.js';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { WorkerMetrics } from './metrics.js';
import { afterReply, forgetFunction } from '../common/metrics.js';
import { Reporter, TargetsFeed, reportOf } from './report.js';
import { workerQueueName } from '../common/policy/placement.js';
import { handOver, orphanQueuesKey } from '../common/queue-handover.js';
import type { SecretBox } from '../common/secrets.js';
import { DeadLetters } from '../common/delivery/dead-letters.js';
import { Settlement } from '../common/delivery/settle.js';

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
  /** Longest result a function may answer with (bytes; default DEFAULT_MAX_RESULT_BYTES, 6 MiB): past it, RESULT_TOO_LARGE. */
  maxResultBytes?: number;
  /** What each function may hold in Redis (the worker applies recordsPerFunction to the records it makes). */
  limits?: Partial<StorageLimits>;
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
  close(): Promise<void>;
}

/** A throttled async invocation is tried again after 100-200 ms. */
const THROTTLED_RETRY_MS = 100;
/** An async invocation's slot lapses this long after its load and run bounds (startedBudgetMs), if its worker died. */
const SLOT_GRACE_MS = 10_000;

/** Builds (or finds) the runtime images this worker serves. */
export async function runtimeImages(stateDir: string): Promise<Record<string, RuntimeImage>> {
  const node = await buildImage('nodejs20', path.join(stateDir, 'images'));
  const python = await buildImage('python3', path.join(stateDir, 'images'));
  return {
    nodejs20: { name: 'nodejs20', layers: [node.dir], args: [...RUNTIME_COMMAND.nodejs20] },
    python3: { name: 'python3', layers: [python.dir], args: [...RUNTIME_COMMAND.python3] },
  };
}

export async function startWorker(cfg: WorkerConfig): Promise<RunningWorker> {
  const id = cfg.workerId ?? `${hostname()}-${process.pid}`;
  const engine = await Engine.open({ stateDir: cfg.stateDir, ...(cfg.cgroupRoot ? { cgroupRoot: cfg.cgroupRoot } : {}) });
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
  const pool = new Pool({
    engine,
    images,
    budgetMb: cfg.budgetMb,
    enabled: cfg.pools,
    // A stem cell per runtime at the default size from the start; other shapes get stem
    // cells once the scheduler sees specialisations wanted for them.
    stemShapes: cfg.pools ? Object.keys(images).map((runtime) => ({ runtime, memoryMb: LIMITS.memoryMb.default })) : [],
    ...(cfg.sizing ? { sizing: cfg.sizing } : {}),
    targets: () => targets.current(),
    ...(cfg.freezeGraceMs !== undefined ? { freezeGraceMs: cfg.freezeGraceMs } : {}),
    log: (line) => console.error(`worker ${id}: ${line}`),
    onEvent: (e) => {
      metrics.onPoolEvent(e);
      cfg.onPoolEvent?.(e);
    },
  });
  poolRef = pool;
  pool.start();

  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null, enableAutoPipelining: true });
  const registry = new FunctionRegistry(redis, cfg.prefix, cfg.secrets);
  const invocations = new InvocationStore(redis, cfg.prefix, undefined, cfg.limits?.recordsPerFunction);
  const queued = new QueuedBytes(redis, cfg.prefix);
  const deadLetters = new DeadLetters(redis, cfg.prefix, cfg.limits?.deadLettersPerFunction);
  // Async attempts end here: retried later, or settled (common/delivery/settle.ts).
  const settlement = new Settlement({ invocations, deadLetters, queued, log: (line) => console.error(`worker ${id}: ${line}`) });
  const versions = new Map<string, FunctionVersion>();
  // Layers of code deleted while no worker of this state dir listened go at start.
  code.sweep((d) => registry.hasCode(d)).catch((err: Error) => console.error(`worker ${id}: sweeping code layers: ${err.message}`));

  const sub = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
  await sub.subscribe(registry.eventsChannel);
  sub.on('message', (_channel: string, message: string) => {
    const ev = parseFunctionEvent(message);
    if (!ev) return;
    // A deleted or replaced function's warm containers go. Versions are immutable, so a
    // replaced function's stay cached; a deleted function's are forgotten, so that jobs
    // still queued for it end as FUNCTION_NOT_FOUND (queue.ts, rule 2).
    // Its code layers go too, after its idle containers, unless another function uses the code.
    if (ev.type === 'deleted') {
      const digests = ev.versions.map((v) => versions.get(`${ev.name}@${v}`)?.spec.code.digest);
      for (const v of ev.versions) versions.delete(`${ev.name}@${v}`);
      // Nor may its name stay listed on /metrics.
      void forgetFunction(metricsRegistry, ev.name);
      void pool.dropFunction(ev.name).then(() => dropLayers(digests));
    }
    if (ev.type === 'deployed' && ev.previous && ev.previous !== ev.version) void pool.dropFunction(ev.name);
    // Pre-pull: the new version's spec and code layer are fetched and unpacked now, in the
    // background, so that its first invocation here does not wait for them.
    if (ev.type === 'deployed') {
      target({ function: ev.name, version: ev.version }).catch((err: Error & { code?: string }) => {
        // Deleted again meanwhile: nothing to pull.
        if (err.code !== 'FUNCTION_NOT_FOUND') console.error(`worker ${id}: pre-pulling ${ev.name}@${ev.version}: ${err.message}`);
      });
    }
  });

  async function versionOf(job: Pick<InvocationJob, 'function' | 'version'>): Promise<FunctionVersion> {
    const key = `${job.function}@${job.version}`;
    let v = versions.get(key);
    if (!v) {
      v = await registry.getVersion(job.function, job.version);
      versions.set(key, v);
    }
    return v;
  }

  /** Removes the layers of code no function uses any more; an invocation holding one defers it (CodeStore.pin). */
  async function dropLayers(digests: (string | undefined)[]): Promise<void> {
    const inUse = new Set([...versions.values()].map((v) => v.spec.code.digest));
    for (const d of new Set(digests)) {
      if (!d || inUse.has(d)) continue;
      try {
        if (!(await registry.hasCode(d))) await code.discard(d);
      } catch (err) {
        console.error(`worker ${id}: removing code layer ${d}: ${(err as Error).message}`);
      }
    }
  }

  async function target(job: Pick<InvocationJob, 'function' | 'version'>): Promise<FunctionTarget> {
    const key = `${job.function}@${job.version}`;
    const spec = (await versionOf(job)).spec;
    const codeDir = code.has(spec.code.digest)
      ? code.dirFor(spec.code.digest)
      : await code.materialize({
          digest: spec.code.digest,
          format: spec.code.kind === 'file' ? 'file' : spec.code.format,
          bytes: await registry.getCode(spec.code.digest),
          filename: spec.code.entry,
        });
    return {
      key,
      name: spec.name,
      runtime: spec.runtime,
      memoryMb: spec.memoryMb,
      cpus: spec.cpu / 1000,
      isolation: spec.isolation,
      codeDir,
      entry: spec.code.entry,
      handler: spec.handler,
      env: spec.env,
      loadTimeoutMs: loadTimeoutMs(spec),
    };
  }

  async function runInvocation(job: Job<InvocationJob>, token?: string): Promise<InvocationResult> {
    const data = job.data;
    const picked = Date.now();
    const queueMs = Math.max(0, picked - data.enqueuedAt);
    // attemptsStarted counts a start that a crash cut short (a stalled job taken back), unlike attemptsMade;
    // a delayed retry (common/delivery/settle.ts) is a start too, a throttled pickup is not.
    const attempt = Math.max(job.attemptsStarted - (data.throttled ?? 0), job.attemptsMade + 1);
    const finish = async (result: InvocationResult, expired = false): Promise<InvocationResult> => {
      // An async caller learns the outcome from the record, so it is written (or the next
      // attempt scheduled) before the job counts as done. A sync caller gets the result
      // itself from the job's completion event; its record write is already on the wire and
      // need not hold the reply back by a round trip (a third of a millisecond, a tenth of a warm invoke).
      if (data.mode === 'async') return settlement.settle(job, token, result, { spec: versions.get(`${data.function}@${data.version}`)?.spec, attempt, startedAt: picked }, expired);
      invocations.complete(data.invocationId, result).catch((err: Error) => console.error(`worker ${id}: recording invocation ${data.invocationId}: ${err.message}`));
      return result;
    };
    const failure = (error: ErrorInfo, initMs = 0): InvocationResult => ({
      ok: false,
      error,
      startKind: 'cold',
      timings: { queueMs, initMs, execMs: 0, totalMs: Date.now() - data.enqueuedAt },
      workerId: id,
    });
    // Not awaited: later writes to the record follow on the same connection, in order.
    invocations.start(recordOf(data), attempt).catch((err: Error) => console.error(`worker ${id}: recording invocation ${data.invocationId}: ${err.message}`));
    if (picked > data.deadline) {
      return finish(failure({ code: 'NO_CAPACITY', message: 'the invocation waited in the queue past its deadline' }), true);
    }
    if (data.mode === 'async' && settlement.tooOld(data, versions.get(`${data.function}@${data.version}`)?.spec, picked)) {
      return finish(failure({ code: 'NO_CAPACITY', message: 'the event is older than its maxEventAgeMs' }), true);
    }
    // Started before on a worker that died (queue.ts, rule 1): a sync invocation runs at most once.
    if (data.mode === 'sync' && (data.restarted || job.attemptsStarted > 1)) {
      return finish(failure(new WorkerLostError().toInfo()));
    }
    let t: FunctionTarget;
    // Init counts the version's code coming to this worker too (fetched and unpacked on
    // its first invocation here), not only the container's part.
    const initStart = performance.now();
    try {
      t = await target(data);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (isErrorCode(code)) return finish(failure({ code, message: (err as Error).message }));
      throw err;
    }
    const fetchMs = performance.now() - initStart;
    // Taken now: a delete while the pool boots or waits for capacity forgets the version,
    // and a lookup after the await would throw with the lease held (versions are immutable).
    const spec = versions.get(t.key)!.spec;
    // The code layer stays on disk until this invocation is done, even if its function is deleted meanwhile.
    using _layer = code.pin(spec.code.digest);
    let lease;
    try {
      lease = await pool.acquire(t);
    } catch (err) {
      if (err instanceof NoCapacityError) return finish(failure({ code: 'NO_CAPACITY', message: err.message }));
      return finish(failure({ code: 'RUNTIME_CRASHED', message: (err as Error).message }));
    }
    const output = new OutputBatcher(
      (stream, chunk) =>
        invocations.appendOutput(data.invocationId, stream, chunk).catch((err: Error) => console.error(`worker ${id}: output of ${data.invocationId}: ${err.message}`)),
      OUTPUT_LIMIT_BYTES,
    );
    let outcome: InvokeOutcome | undefined;
    try {
      outcome = await lease.instance.invoke({
        ...(lease.loading ? { afterLoad: lease.loading } : {}),
        onOutput: (stream, chunk) => output.push(stream, chunk),
        id: data.invocationId,
        ...requestOf(data),
        // The job's event is its body's JSON (requestOf): the body goes to the runtime once.
        eventIsBody: data.http !== undefined,
        timeoutMs: spec.timeoutMs,
        ...(cfg.maxResultBytes ? { maxResultBytes: cfg.maxResultBytes } : {}),
        context: {
          invocationId: data.invocationId,
          functionName: spec.name,
          functionVersion: data.version,
          memoryLimitMb: spec.memoryMb,
          deadline: Date.now() + spec.timeoutMs,
          attempt,
          ...(data.delivery?.idempotencyKey ? { idempotencyKey: data.delivery.idempotencyKey } : {}),
        },
      });
    } finally {
      // Released on every path; a container whose invocation threw is not reused.
      await pool.release(lease, outcome !== undefined && (outcome.ok || outcome.error?.code === 'FUNCTION_ERROR'));
    }
    // Deleted while it ran: the delete dropped only idle containers, this one goes now (and its layer with the pin).
    if (!versions.has(t.key)) void pool.dropFunction(t.name);
    const initMs = fetchMs + lease.initMs + outcome.loadMs;
    // The function's own code failed to load: its error, reported as the function's.
    const error = outcome.error && { ...outcome.error, code: outcome.error.code === 'LOAD_FAILED' ? ('FUNCTION_ERROR' as const) : outcome.error.code };
    const startKind = lease.startKind;
    afterReply(() =>
      metrics.observe({
        fn: t.name,
        runtime: t.runtime,
        startKind,
        ok: outcome.ok,
        ...(error ? { errorCode: error.code } : {}),
        initMs,
        execMs: outcome.execMs,
        cpuMs: outcome.cpuMs,
        memoryPeakBytes: outcome.memoryPeakBytes,
      }),
    );
    output.push('stdout', outcome.stdout);
    output.push('stderr', outcome.stderr);
    await output.flush();
    const result: InvocationResult = {
      ok: outcome.ok,
      startKind: lease.startKind,
      timings: { queueMs, initMs, ...(lease.thawMs !== undefined ? { thawMs: lease.thawMs } : {}), execMs: outcome.execMs, totalMs: Date.now() - data.enqueuedAt },
      usage: { cpuMs: outcome.cpuMs, memoryPeakBytes: outcome.memoryPeakBytes },
      workerId: id,
    };
    if (outcome.ok) {
      if (outcome.http) result.http = outcome.http;
      else result.value = outcome.value;
    } else {
      result.error = { code: error!.code, message: error!.message, ...(error!.stack ? { stack: error!.stack } : {}) };
    }
    return finish(result);
  }

  // Concurrency bounded by the memory budget: at most one invocation per smallest container.
  const concurrency = Math.max(1, Math.floor(cfg.budgetMb / 64));
  let inflight = 0;
  const limiter = new ConcurrencyLimiter(redis, cfg.prefix);
  /**
   * An async invocation of a function with a concurrency limit takes a slot before it
   * runs (a sync one's was taken by the gateway, which answers 429 when none is free).
   * None free: the job goes back to the queue, delayed, and is tried again until its max
   * age; it is not an attempt, and nothing of it is recorded until it runs.
   */
  const admitted = async (job: Job<InvocationJob>, token: string | undefined): Promise<InvocationResult> => {
    const data = job.data;
    const spec = data.mode === 'async' ? (await versionOf(data).catch(() => undefined))?.spec : undefined;
    const limit = spec?.concurrency ?? null;
    if (limit === null || !spec) return runInvocation(job, token);
    const holdMs = startedBudgetMs(spec) + SLOT_GRACE_MS;
    if (!(await limiter.take(data.function, data.invocationId, limit, holdMs)) && Date.now() <= data.deadline) {
      metrics.throttled.inc({ function: data.function, mode: 'async' });
      await job.updateData({ ...data, throttled: (data.throttled ?? 0) + 1 });
      await job.moveToDelayed(Date.now() + THROTTLED_RETRY_MS + Math.random() * THROTTLED_RETRY_MS, token);
      throw new DelayedError();
    }
    // Past its max age it runs into runInvocation's deadline check and ends NO_CAPACITY.
    try {
      return await runInvocation(job, token);
    } finally {
      limiter.give(data.function, data.invocationId).catch((err: Error) => console.error(`worker ${id}: giving back ${data.function}'s slot: ${err.message}`));
    }
  };
  const counted = async (job: Job<InvocationJob>, token?: string) => {
    inflight++;
    try {
      return await admitted(job, token);
    } finally {
      inflight--;
    }
  };
  // Two consumers: the shared queue every worker drains, and this worker's own queue, to
  // which the gateway sends invocations that can find a warm container or stem cell here.
  const ownQueue = workerQueueName(INVOCATION_QUEUE, id);
  const connections: Redis[] = [];
  const consumers = [INVOCATION_QUEUE, ownQueue].map((name) => {
    const connection = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
    connections.push(connection);
    const lockDuration = cfg.lockMs ?? DEFAULT_LOCK_MS;
    const w = new Worker<InvocationJob, InvocationResult>(name, counted, {
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
  const reporter = new Reporter(redis, cfg.prefix, () => reportOf(id, ownQueue, pool, cfg.budgetMb, inflight), { demand: () => pool.demandReport(), targets });
  reporter.start();

  return {
    id,
    pool,
    engine,
    metrics: metricsRegistry,
    consumers: { shared: consumers[0]!, own: consumers[1]! },
    async close() {
      // Out of placement first: gateways stop sending work here at their next look at the
      // reports. The queue becomes an orphan at once, so that what a gateway still adds to
      // it later, or what is left if this worker dies while it stops, moves on the
      // scheduler's next tick (common/queue-handover.ts).
      await reporter.stop(id);
      await redis.sadd(orphanQueuesKey(cfg.prefix), ownQueue).catch(() => {});
      // No new jobs from here; the ones running finish, bounded by their timeouts.
      const stopping = Promise.all(consumers.map((w) => w.close()));
      // What waits in this worker's own queue is served elsewhere now, not at its deadline.
      const shared = new Queue<InvocationJob>(INVOCATION_QUEUE, { connection: redis, prefix: cfg.prefix });
      const handOverOwn = () => handOver(redis, cfg.prefix, ownQueue, shared).catch((err: Error) => console.error(`worker ${id}: handing over ${ownQueue}: ${err.message}`));
      await handOverOwn();
      await stopping;
      // Whatever arrived meanwhile moves too, and the queue's keys go. It stays an orphan
      // for the scheduler, which forgets it once it finds it empty.
      await handOverOwn();
      await shared.close();
      await sub.quit().catch(() => {});
      await pool.close();
      // Every container is gone with the pool, so the engine's fork server exits now too.
      await engine.close();
      await redis.quit().catch(() => {});
      for (const c of connections) await c.quit().catch(() => {});
    },
  };
}

/** The invocation record's identity, from the job (the record may not exist yet: sync). */
function recordOf(job: InvocationJob): NewInvocation {
  return { id: job.invocationId, function: job.function, version: job.version, mode: job.mode, createdAt: new Date(job.enqueuedAt) };
}
