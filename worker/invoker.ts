/**
 * Running one invocation job: admission (an async invocation's concurrency slot), the
 * deadline and at-most-once checks, the function's target and code, a container from the
 * pool, the invocation itself, and the result and record built from its outcome.
 * Every failure is answered with the public code of worker/errors.ts.
 */
import { DelayedError, WaitingError, type Job } from 'bullmq';
import { startedBudgetMs } from '../common/function-spec.js';
import { WorkerLostError, type ErrorInfo } from '../common/errors.js';
import { OUTPUT_LIMIT_BYTES, type InvocationStore, type NewInvocation } from '../common/invocations.js';
import type { QueuedBytes } from '../common/queued-bytes.js';
import type { ConcurrencyLimiter } from '../common/concurrency.js';
import { attemptOf, requestOf, type InvocationJob, type InvocationResult } from '../common/queue.js';
import { afterReply } from '../common/metrics.js';
import type { CodeStore } from './instance/code.js';
import type { InvokeOutcome } from './instance/instance.js';
import { OutputBatcher } from './instance/output.js';
import type { Lease, Pool } from './pool/pool.js';
import type { WorkerMetrics } from './metrics.js';
import type { FunctionVersions } from './versions.js';
import { knownPublicError, PUBLIC_CODE, publicError } from './errors.js';
import { ioUsageOf } from './instance/isolation.js';
import { netUsageOf } from './instance/network.js';
import type { Settlement } from '../common/delivery/settle.js';

/** A throttled async invocation is tried again after 100-200 ms. */
const THROTTLED_RETRY_MS = 100;
/** An async invocation's slot lapses this long after its load and run bounds (startedBudgetMs), if its worker died. */
const SLOT_GRACE_MS = 10_000;

export interface InvokerDeps {
  workerId: string;
  pool: Pool;
  code: CodeStore;
  versions: FunctionVersions;
  invocations: InvocationStore;
  queued: QueuedBytes;
  limiter: ConcurrencyLimiter;
  metrics: WorkerMetrics;
  /** Where an async attempt ends: retried later, dead-lettered, or final (common/delivery/settle.ts). */
  settlement: Settlement;
  /** Longest result a function may answer with (bytes; the instance's default when absent). */
  maxResultBytes?: number;
  log: (line: string) => void;
}

/** An invocation this worker runs now, so that the end of a drain can stop it and put it back (returnAll). */
interface Running {
  /** Its container once the pool gave one. */
  lease?: Lease;
  /** The drain's grace ran out: a failure from here on is the kill's, and the job goes back to the queue. */
  returning: boolean;
}

export class Invoker {
  /** Invocations running now (reported for placement). */
  inflight = 0;
  private readonly running = new Set<Running>();

  constructor(private readonly d: InvokerDeps) {}

  /** The BullMQ processor: every job of the worker's consumers comes here. */
  readonly process = async (job: Job<InvocationJob>, token?: string): Promise<InvocationResult> => {
    this.inflight++;
    const self: Running = { returning: false };
    this.running.add(self);
    try {
      return await this.admitted(job, token, self);
    } finally {
      this.inflight--;
      this.running.delete(self);
    }
  };

  /**
   * The end of a drain's grace period (worker/main.ts): every invocation still running is
   * stopped (its container killed) and its job put back in its queue, not failed and not
   * counted as an attempt (putBack). One that completes before its kill lands settles as
   * usual: it ran once, and it is not put back to run again. Returns how many were still running.
   */
  async returnAll(): Promise<number> {
    const now = [...this.running];
    for (const r of now) r.returning = true;
    await Promise.all(now.map((r) => r.lease?.instance.kill().catch((err: Error) => this.d.log(`stopping an invocation for the drain: ${err.message}`))));
    return now.length;
  }

  /**
   * An async invocation of a function with a concurrency limit takes a slot before it
   * runs (a sync one's was taken by the gateway, which answers 429 when none is free).
   * None free: the job goes back to the queue, delayed, and is tried again until its max
   * age; it is not an attempt, and nothing of it is recorded until it runs.
   */
  private async admitted(job: Job<InvocationJob>, token: string | undefined, self: Running): Promise<InvocationResult> {
    const data = job.data;
    const spec = data.mode === 'async' ? (await this.d.versions.get(data).catch(() => undefined))?.spec : undefined;
    const limit = spec?.concurrency ?? null;
    if (limit === null || !spec) return this.run(job, token, self);
    const holdMs = startedBudgetMs(spec) + SLOT_GRACE_MS;
    if (!(await this.d.limiter.take(data.function, data.invocationId, limit, holdMs)) && Date.now() <= data.deadline) {
      this.d.metrics.throttled.inc({ function: data.function, mode: 'async' });
      await job.updateData({ ...data, throttled: (data.throttled ?? 0) + 1 });
      await job.moveToDelayed(Date.now() + THROTTLED_RETRY_MS + Math.random() * THROTTLED_RETRY_MS, token);
      throw new DelayedError();
    }
    // Past its max age it runs into run's deadline check and ends NO_CAPACITY.
    try {
      return await this.run(job, token, self);
    } finally {
      this.d.limiter.give(data.function, data.invocationId).catch((err: Error) => this.d.log(`giving back ${data.function}'s slot: ${err.message}`));
    }
  }

  private async run(job: Job<InvocationJob>, token: string | undefined, self: Running): Promise<InvocationResult> {
    const { pool, versions, invocations, metrics } = this.d;
    const data = job.data;
    const picked = Date.now();
    const queueMs = Math.max(0, picked - data.enqueuedAt);
    const attempt = attemptOf(job);
    const finish = (result: InvocationResult, expired = false) => this.finish(job, token, result, attempt, picked, expired);
    const failure = (error: ErrorInfo, initMs = 0): InvocationResult => ({
      ok: false,
      error,
      startKind: 'cold',
      timings: { queueMs, initMs, execMs: 0, totalMs: Date.now() - data.enqueuedAt },
      workerId: this.d.workerId,
    });
    // Not awaited: later writes to the record follow on the same connection, in order.
    invocations.start(recordOf(data), attempt).catch((err: Error) => this.d.log(`recording invocation ${data.invocationId}: ${err.message}`));
    if (picked > data.deadline) {
      return finish(failure({ code: 'NO_CAPACITY', message: 'the invocation waited in the queue past its deadline' }), true);
    }
    if (data.mode === 'async' && this.d.settlement.tooOld(data, versions.cached(data)?.spec, picked)) {
      return finish(failure({ code: 'NO_CAPACITY', message: 'the event is older than its maxEventAgeMs' }), true);
    }
    // Started before on a worker that died (queue.ts, rule 1): a sync invocation runs at most once.
    if (data.mode === 'sync' && (data.restarted || job.attemptsStarted > 1)) {
      return finish(failure(new WorkerLostError().toInfo()));
    }
    // Init counts the version's code coming to this worker too (fetched and unpacked on
    // its first invocation here), not only the container's part.
    const initStart = performance.now();
    let found;
    try {
      found = await versions.target(data);
    } catch (err) {
      // Anything the worker does not know (Redis gone, say) fails the job: BullMQ retries an async one.
      const known = knownPublicError(err);
      if (known) return finish(failure(known));
      throw err;
    }
    const { target: t, version } = found;
    const spec = version.spec;
    const fetchMs = performance.now() - initStart;
    // The code layer stays on disk until this invocation is done, even if its function is deleted meanwhile.
    using _layer = this.d.code.pin(spec.code.digest);
    let lease: Lease;
    try {
      lease = await pool.acquire(t);
    } catch (err) {
      if (self.returning) return this.putBack(job, token, finish);
      // The container could not be had: whatever broke, the function is not at fault.
      return finish(failure(publicError(err, 'RUNTIME_CRASHED')));
    }
    self.lease = lease;
    if (self.returning) {
      self.lease = undefined;
      await pool.release(lease, true);
      return this.putBack(job, token, finish);
    }
    const output = new OutputBatcher(
      (stream, chunk) => invocations.appendOutput(data.invocationId, stream, chunk).catch((err: Error) => this.d.log(`output of ${data.invocationId}: ${err.message}`)),
      OUTPUT_LIMIT_BYTES,
    );
    let outcome: InvokeOutcome | undefined;
    try {
      // Deleted while the pool booted or waited for capacity: the function is gone, and its
      // container goes with the lease (not reused) below.
      versions.assertLive(t);
      outcome = await lease.instance.invoke({
        ...(lease.loading ? { afterLoad: lease.loading } : {}),
        onOutput: (stream, chunk) => output.push(stream, chunk),
        id: data.invocationId,
        ...requestOf(data),
        // The job's event is its body's JSON (requestOf): the body goes to the runtime once.
        eventIsBody: data.http !== undefined,
        timeoutMs: spec.timeoutMs,
        ...(this.d.maxResultBytes ? { maxResultBytes: this.d.maxResultBytes } : {}),
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
    } catch (err) {
      if (self.returning) {
        await output.flush();
        return this.putBack(job, token, finish);
      }
      const known = knownPublicError(err);
      if (!known) throw err;
      return finish(failure(known, fetchMs + lease.initMs));
    } finally {
      self.lease = undefined;
      // Released on every path; a container whose invocation threw is not reused.
      await pool.release(lease, !self.returning && outcome !== undefined && (outcome.ok || outcome.error?.code === 'FUNCTION_ERROR'));
    }
    // Stopped by the drain's kill (a success that beat the kill is kept: it ran once).
    if (self.returning && !outcome.ok) {
      output.push('stdout', outcome.stdout);
      output.push('stderr', outcome.stderr);
      await output.flush();
      return this.putBack(job, token, finish);
    }
    // Deleted while it ran: the delete dropped only idle containers, this one goes now (and its layer with the pin).
    if (!versions.has(t.key)) void pool.dropFunction(t.name);
    const initMs = fetchMs + lease.initMs + outcome.loadMs;
    const error = outcome.error && { ...outcome.error, code: PUBLIC_CODE[outcome.error.code] };
    const startKind = lease.startKind;
    const done = outcome;
    afterReply(() =>
      metrics.observe({
        fn: t.name,
        runtime: t.runtime,
        startKind,
        ok: done.ok,
        ...(error ? { errorCode: error.code } : {}),
        initMs,
        execMs: done.execMs,
        cpuMs: done.cpuMs,
        memoryPeakBytes: done.memoryPeakBytes,
        ...ioUsageOf(done),
        ...netUsageOf(done),
      }),
    );
    output.push('stdout', outcome.stdout);
    output.push('stderr', outcome.stderr);
    await output.flush();
    const result: InvocationResult = {
      ok: outcome.ok,
      startKind: lease.startKind,
      timings: { queueMs, initMs, ...(lease.thawMs !== undefined ? { thawMs: lease.thawMs } : {}), execMs: outcome.execMs, totalMs: Date.now() - data.enqueuedAt },
      usage: { cpuMs: outcome.cpuMs, memoryPeakBytes: outcome.memoryPeakBytes, ...ioUsageOf(outcome), ...netUsageOf(outcome) },
      workerId: this.d.workerId,
    };
    if (outcome.ok) {
      if (outcome.http) result.http = outcome.http;
      else result.value = outcome.value;
    } else {
      result.error = { code: error!.code, message: error!.message, ...(error!.stack ? { stack: error!.stack } : {}) };
    }
    return finish(result);
  }

  /**
   * A job the drain stopped goes back to the head of its queue's wait list: moveToWait
   * with this worker's lock token (BullMQ's moveJobFromActiveToWait: the lock goes, the
   * job is pushed where the next fetch takes it), then WaitingError, which BullMQ's worker
   * takes as "neither completed nor failed", so attemptsMade and the failed set are
   * untouched. attemptsStarted did count this start: `returned` tells run() not to count it.
   * A job in this worker's own queue then moves to the shared queue with the rest of it
   * (worker/main.ts, handOver). A sync caller is answered WORKER_LOST instead (at most once,
   * common/queue.ts rule 1): it decides whether to try again.
   */
  private async putBack(job: Job<InvocationJob>, token: string | undefined, finish: (r: InvocationResult) => Promise<InvocationResult>): Promise<InvocationResult> {
    const data = job.data;
    if (data.mode === 'sync') {
      const error = new WorkerLostError('the worker stopped (SIGTERM) and its drain grace ran out before the invocation ended; it was not run again: retry').toInfo();
      return finish({ ok: false, error, startKind: 'cold', timings: { queueMs: 0, initMs: 0, execMs: 0, totalMs: Date.now() - data.enqueuedAt }, workerId: this.d.workerId });
    }
    await job.updateData({ ...data, returned: (data.returned ?? 0) + 1 });
    await job.moveToWait(token);
    this.d.log(`invocation ${data.invocationId} stopped at the end of the drain and returned to ${job.queueName}`);
    throw new WaitingError();
  }

  private async finish(job: Job<InvocationJob>, token: string | undefined, result: InvocationResult, attempt: number, startedAt: number, expired: boolean): Promise<InvocationResult> {
    const data = job.data;
    // An async caller learns the outcome from the record, so it is written (or the next
    // attempt scheduled, or the event dead-lettered) before the job counts as done. A sync
    // caller gets the result itself from the job's completion event; its record write is
    // already on the wire and need not hold the reply back by a round trip (a third of a
    // millisecond, a tenth of a warm invoke).
    if (data.mode === 'async') return this.d.settlement.settle(job, token, result, { spec: this.d.versions.cached(data)?.spec, attempt, startedAt }, expired);
    this.d.invocations.complete(data.invocationId, result).catch((err: Error) => this.d.log(`recording invocation ${data.invocationId}: ${err.message}`));
    return result;
  }
}

/** The invocation record's identity, from the job (the record may not exist yet: sync). */
function recordOf(job: InvocationJob): NewInvocation {
  return { id: job.invocationId, function: job.function, version: job.version, mode: job.mode, createdAt: new Date(job.enqueuedAt) };
}
