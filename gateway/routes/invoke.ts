/**
 * POST /v1/functions/:name/invoke: sync by default (waits for the reply), async with
 * ?async=true or "Prefer: respond-async" (202 + Location of the invocation record).
 */
import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';
import {
  FaasboxError,
  ConcurrencyLimitError,
  FunctionNotFoundError,
  InternalError,
  NoCapacityError,
  TimeoutError,
  WorkerLostError,
  type ErrorInfo,
} from '../../common/errors.js';
import { functionNameSchema, startedBudgetMs } from '../../common/function-spec.js';
import type { SyncOutcome } from '../../common/invocation-client.js';
import type { NewInvocation } from '../../common/invocations.js';
import { QueuedBytes, JOB_OVERHEAD_BYTES } from '../../common/queued-bytes.js';
import { afterReply } from '../../common/metrics.js';
import { bodyFields, invocationResultSchema, type HttpRequestData, type InvocationJob, type InvocationMode, type InvocationResult } from '../../common/queue.js';
import { parseWith } from '../../common/validation.js';
import { acceptAsync } from '../../common/delivery/accept.js';
import { IdempotencyKeys } from '../../common/delivery/idempotency.js';
import { deliveryOfRequest } from '../delivery-headers.js';
import type { KeyChecker } from '../auth.js';
import { readJson } from '../body.js';
import { versionKey } from '../../common/keys.js';
import type { GatewayDeps } from '../deps.js';
import type { GatewayMetrics } from '../metrics.js';

const asyncQuerySchema = z.enum(['true', 'false', '1', '0']).optional();

/** Request headers a function never sees: credentials for us, and hop-by-hop ones. */
const HIDDEN_REQUEST_HEADERS = new Set(['authorization', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer']);
/**
 * Response headers the gateway owns: framing (it frames the body itself), and the
 * platform's own, which a function's answer must not replace.
 */
const DROPPED_RESPONSE_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'trailer',
  'x-invocation-id',
  'x-function-version',
  'x-cold-start',
  'server-timing',
]);

function invokeMode(c: Context): InvocationMode {
  const q = parseWith(asyncQuerySchema, c.req.query('async'), 'query parameter async');
  if (q === 'true' || q === '1') return 'async';
  if (q === undefined && /(^|[,\s])respond-async([,;\s]|$)/i.test(c.req.header('prefer') ?? '')) return 'async';
  return 'sync';
}

/** The request without its body: the job holds that once (bodyFields). */
function httpRequestData(c: Context): Omit<HttpRequestData, 'body'> {
  const headers: Record<string, string> = {};
  c.req.raw.headers.forEach((value, key) => {
    if (!HIDDEN_REQUEST_HEADERS.has(key)) headers[key] = value;
  });
  const url = new URL(c.req.url);
  return { method: c.req.method, url: url.pathname + url.search, headers };
}

function serverTiming(result: InvocationResult): string {
  const t = result.timings;
  const ms = (n: number) => Math.round(n * 100) / 100;
  // thaw only when one happened: its absence shows a warm start that found the container running.
  const thaw = t.thawMs !== undefined ? `, thaw;dur=${ms(t.thawMs)}` : '';
  return `queue;dur=${ms(t.queueMs)}, init;dur=${ms(t.initMs)}${thaw}, exec;dur=${ms(t.execMs)}, total;dur=${ms(t.totalMs)}`;
}

/** A function's failure as the error the API answers with; its stack goes in details. */
function functionFailure(info: ErrorInfo): FaasboxError {
  const details =
    info.stack === undefined ? info.details : { ...(typeof info.details === 'object' && info.details ? info.details : {}), stack: info.stack };
  return new FaasboxError(info.code, info.message, { details });
}

export function invokeApp(deps: GatewayDeps, keys: KeyChecker, metrics: GatewayMetrics): Hono {
  const app = new Hono();
  const { registry, invocations, queue, concurrency, config } = deps;
  const accept = {
    invocations,
    queue,
    queued: new QueuedBytes(deps.redis, config.prefix),
    idempotency: new IdempotencyKeys(deps.redis, config.prefix),
    roomBytes: config.limits.queuedBytesPerFunction,
  };

  app.post(
    '/:name/invoke',
    async (c) => {
      const name = parseWith(functionNameSchema, c.req.param('name'), 'function name');
      const fn = await registry.find(name);
      keys.requireInvoke(c, fn?.spec);
      if (!fn) throw new FunctionNotFoundError(name);
      const mode = invokeMode(c);
      const { value: event, raw } = await readJson(c, { maxBytes: config.maxInvokeBytes, maxDepth: config.maxJsonDepth, allowEmpty: true, emptyValue: null });

      const id = randomUUID();
      const enqueuedAt = Date.now();
      const job: InvocationJob = {
        invocationId: id,
        function: name,
        version: fn.version,
        ...bodyFields(event, raw),
        http: httpRequestData(c),
        mode,
        enqueuedAt,
        deadline: enqueuedAt + (mode === 'sync' ? config.syncQueueTimeoutMs : config.asyncMaxAgeMs),
      };
      const record = { id, function: name, version: fn.version, mode, createdAt: new Date(enqueuedAt) };
      c.header('X-Invocation-Id', id);
      c.header('X-Function-Version', fn.version);

      if (mode === 'async') {
        // The body is held in Redis until a worker runs the job: bounded per function.
        let bytes = raw.length + JOB_OVERHEAD_BYTES;
        for (const [k, v] of Object.entries(job.http!.headers)) bytes += k.length + v.length;
        const delivery = deliveryOfRequest(c, deps.callbacks);
        if (delivery) job.delivery = delivery;
        let accepted;
        try {
          accepted = await acceptAsync(accept, fn.spec, job, bytes);
        } catch (err) {
          if (err instanceof FaasboxError && err.code === 'QUEUE_FULL') c.header('Retry-After', '1');
          throw err;
        }
        const id = accepted.invocationId;
        if (accepted.repeat) {
          c.header('X-Invocation-Id', id);
          c.header('Idempotent-Replayed', 'true');
        }
        c.header('Location', `/v1/invocations/${id}`);
        if (c.req.header('prefer')) c.header('Preference-Applied', 'respond-async');
        return c.json({ invocationId: id, status: 'queued' }, 202);
      }

      // The worker bounds the module's load and then the run (startedBudgetMs).
      const budgetMs = startedBudgetMs(fn.spec) + config.syncGraceMs;
      const limit = fn.spec.concurrency;
      // A sync caller is told at once (as Lambda's throttle does) rather than queued behind
      // the function's own limit; held until the reply, or lapsed if this gateway dies.
      if (limit !== null && !(await concurrency.take(name, id, limit, config.syncQueueTimeoutMs + budgetMs))) {
        c.header('Retry-After', '1');
        metrics.throttled.inc({ function: name, mode });
        throw new ConcurrencyLimitError(name, limit);
      }
      const want = { fn: versionKey(name, fn.version), runtime: fn.spec.runtime, memoryMb: fn.spec.memoryMb, network: fn.spec.network?.mode ?? 'none' };
      let outcome: SyncOutcome;
      try {
        outcome = await queue.invokeSync(job, budgetMs, want);
      } finally {
        if (limit !== null) concurrency.give(name, id).catch((err: Error) => console.error(`[faasbox] gateway: giving back ${name}'s slot: ${err.message}`));
      }
      // Lost with its worker: not run again (at most once), the caller decides to retry.
      if (outcome.kind === 'worker-lost') c.header('Retry-After', '1');
      const result = await resultOf(outcome, record, budgetMs);
      const seconds = (Date.now() - enqueuedAt) / 1000;
      afterReply(() =>
        metrics.invocationDuration.observe(
          { function: name, mode, outcome: result.ok ? 'ok' : (result.error?.code ?? 'INTERNAL'), start_kind: result.startKind },
          seconds,
        ),
      );
      c.header('X-Cold-Start', result.startKind);
      c.header('Server-Timing', serverTiming(result));
      if (!result.ok) {
        // The worker that took the job back after BullMQ's stalled check answered it lost.
        if (result.error?.code === 'WORKER_LOST') c.header('Retry-After', '1');
        throw functionFailure(result.error ?? { code: 'INTERNAL', message: 'worker reported failure without an error' });
      }
      if (result.http) {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(result.http.headers)) {
          if (!DROPPED_RESPONSE_HEADERS.has(k.toLowerCase())) headers[k] = v;
        }
        return c.body(Buffer.from(result.http.body, 'base64'), result.http.status as ContentfulStatusCode, headers);
      }
      return c.json(result.value === undefined ? null : result.value, 200);
    },
  );

  /** Everything that is not a well-formed reply becomes a thrown FaasboxError here. */
  async function resultOf(outcome: SyncOutcome, record: NewInvocation, budgetMs: number): Promise<InvocationResult> {
    const id = record.id;
    switch (outcome.kind) {
      case 'completed': {
        const parsed = invocationResultSchema.safeParse(outcome.returnvalue);
        if (!parsed.success) throw new InternalError(`worker returned a malformed result for invocation ${id}`);
        return parsed.data as InvocationResult;
      }
      case 'failed':
        throw new InternalError(`invocation ${id} failed outside the function: ${outcome.reason}`);
      case 'no-capacity': {
        const err = new NoCapacityError(`no worker started the invocation within ${config.syncQueueTimeoutMs} ms`);
        await invocations.fail(record, err.toInfo());
        throw err;
      }
      case 'timeout':
        throw new TimeoutError(budgetMs);
      case 'worker-lost': {
        const err = new WorkerLostError();
        await invocations.fail(record, err.toInfo());
        throw err;
      }
    }
  }

  return app;
}
