/**
 * The delivery worker: sends settled outcomes to their destinations (the jobs
 * common/delivery/destinations.ts hands over). It runs in the scheduler, on every
 * scheduler and not only the leader (a BullMQ Worker shares the queue safely, so no
 * lease is needed), because:
 *   - outbound requests to users' hosts stay out of the worker, which is root, holds the
 *     containers and must keep its event loop and job slots for invocations: a slow
 *     callback server never holds a worker's concurrency;
 *   - the scheduler already owns the other delivery work (triggers, their retries).
 *
 * Each delivery is tried up to `maxAttempts` times, exponential backoff with jitter
 * between (retry.ts's backoffDelayMs), through BullMQ's delayed set (moveToDelayed, as
 * settle.ts does), so a scheduler that dies mid-way leaves a job that another takes.
 * A delivery that finally fails, or that the host policy refuses, is logged and counted
 * (faasbox_destination_deliveries_total{outcome="failed"|"refused"}), and its job stays
 * in the queue's failed set: never lost silently.
 */
import { createHash } from 'node:crypto';
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Counter, type Registry } from 'prom-client';
import { acceptAsync, type AcceptDeps } from '../common/delivery/accept.js';
import { CallbackRefusedError, redacted, sendCallback } from '../common/delivery/callback.js';
import { DELIVERY_QUEUE, type DeliveryJob, type Outcome } from '../common/delivery/destinations.js';
import type { HostPolicy } from '../common/delivery/host-policy.js';
import { IdempotencyKeys } from '../common/delivery/idempotency.js';
import { backoffDelayMs } from '../common/delivery/retry.js';
import { callbackSecret, INVOCATION_ID_HEADER, SIGNATURE_HEADER, signCallback, TIMESTAMP_HEADER } from '../common/delivery/signature.js';
import type { Destination } from '../common/delivery-spec.js';
import { FaasboxError } from '../common/errors.js';
import { InvocationClient } from '../common/invocation-client.js';
import { InvocationStore } from '../common/invocations.js';
import { QueuedBytes } from '../common/queued-bytes.js';
import type { InvocationJob } from '../common/queue.js';
import { FunctionRegistry } from '../common/registry.js';
import type { SecretBox } from '../common/secrets.js';

export interface DestinationSettings {
  /** Tries per delivery, the first included (FAASBOX_CALLBACK_MAX_ATTEMPTS). */
  maxAttempts: number;
  /** The wait after the first failed try, doubling after each (FAASBOX_CALLBACK_DELAY_MS). */
  delayMs: number;
  /** One callback request's bound (FAASBOX_CALLBACK_TIMEOUT_MS). */
  timeoutMs: number;
  /** Deliveries in flight at once per scheduler. */
  concurrency: number;
}

/**
 * Function destinations chained longer than this are not followed: a function whose
 * onFailure names itself (or two naming each other) would otherwise invoke forever.
 */
export const MAX_DESTINATION_DEPTH = 16;

/** 8 tries over about 4 minutes (1 s doubling, with jitter), 10 s per request. */
export const DEFAULT_DESTINATION_SETTINGS: DestinationSettings = { maxAttempts: 8, delayMs: 1000, timeoutMs: 10_000, concurrency: 20 };

export interface DestinationWorkerConfig {
  redisUrl: string;
  prefix: string;
  policy: HostPolicy;
  /** Signs callbacks (signature.ts); without it a callback is not sent, as unsigned it could be forged. */
  secrets: SecretBox | undefined;
  settings: DestinationSettings;
  /** An invocation a function destination starts may wait this long to start (the gateway's asyncMaxAgeMs). */
  maxEventAgeMs: number;
  queuedBytesPerFunction: number;
  metrics?: Registry;
  log: (line: string) => void;
}

/** A UUID-shaped id derived from the parts: a delivery done twice starts one invocation. */
function derivedId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\n')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** OpenFaaS's X-Function-Status for a failure: a timeout as the gateway answers it, anything else 500. */
function failureStatus(code: string | undefined): number {
  return code === 'TIMEOUT' ? 504 : 500;
}

export class DestinationWorker {
  private readonly connections: Redis[] = [];
  private readonly queues = new Map<string, Queue>();
  private readonly worker: Worker<DeliveryJob>;
  private readonly accept: AcceptDeps;
  private readonly registry: FunctionRegistry;
  private readonly deliveries: Counter;

  private constructor(
    private readonly cfg: DestinationWorkerConfig,
    private readonly redis: Redis,
    private readonly client: InvocationClient,
  ) {
    this.registry = new FunctionRegistry(redis, cfg.prefix);
    this.accept = {
      invocations: new InvocationStore(redis, cfg.prefix),
      queue: client,
      queued: new QueuedBytes(redis, cfg.prefix),
      idempotency: new IdempotencyKeys(redis, cfg.prefix),
      roomBytes: cfg.queuedBytesPerFunction,
    };
    const name = 'faasbox_destination_deliveries_total';
    this.deliveries =
      (cfg.metrics?.getSingleMetric(name) as Counter | undefined) ??
      new Counter({ name, help: 'Outcomes sent to destinations, by kind (queue, function, url, openfaas) and outcome (delivered, retried, failed, refused)', labelNames: ['kind', 'outcome'], registers: cfg.metrics ? [cfg.metrics] : [] });
    const connection = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
    this.connections.push(connection);
    this.worker = new Worker<DeliveryJob>(DELIVERY_QUEUE, (job, token) => this.process(job, token), { connection, prefix: cfg.prefix, concurrency: cfg.settings.concurrency });
    this.worker.on('error', (err) => cfg.log(`deliveries: ${err.message}`));
  }

  static async start(cfg: DestinationWorkerConfig): Promise<DestinationWorker> {
    const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
    const client = await InvocationClient.open({ connection: redis, prefix: cfg.prefix, placement: false });
    const w = new DestinationWorker(cfg, redis, client);
    await w.worker.waitUntilReady();
    return w;
  }

  private kindOf(job: DeliveryJob): string {
    const t = job.target;
    if (t.kind === 'openfaas') return 'openfaas';
    const d = t.destination;
    return 'queue' in d ? 'queue' : 'function' in d ? 'function' : 'url';
  }

  private async process(job: Job<DeliveryJob>, token: string | undefined): Promise<void> {
    const kind = this.kindOf(job.data);
    const { outcome } = job.data;
    const attempt = job.attemptsStarted;
    const what = `${kind} delivery of invocation ${outcome.invocationId} (${outcome.function})`;
    try {
      await this.deliver(job.data);
      this.deliveries.inc({ kind, outcome: 'delivered' });
    } catch (err) {
      const e = err as Error;
      if (err instanceof CallbackRefusedError || err instanceof UnrecoverableError) {
        this.deliveries.inc({ kind, outcome: 'refused' });
        this.cfg.log(`${what}: given up: ${e.message}`);
        throw new UnrecoverableError(e.message);
      }
      if (attempt >= this.cfg.settings.maxAttempts) {
        this.deliveries.inc({ kind, outcome: 'failed' });
        this.cfg.log(`${what}: failed for good after ${attempt} tries: ${e.message}`);
        throw new UnrecoverableError(`after ${attempt} tries: ${e.message}`);
      }
      this.deliveries.inc({ kind, outcome: 'retried' });
      const delay = backoffDelayMs({ type: 'exponential', delayMs: this.cfg.settings.delayMs, jitter: true }, attempt);
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
  }

  private async deliver(job: DeliveryJob): Promise<void> {
    const t = job.target;
    if (t.kind === 'openfaas') return this.openfaas(job.outcome, t.url, t.httpResult);
    const d: Destination = t.destination;
    if ('queue' in d) return this.toQueue(job.outcome, d);
    if ('function' in d) return this.toFunction(job.outcome, d.function, t.on);
    return this.post(job.outcome, d.url, Buffer.from(JSON.stringify(job.outcome)), { 'content-type': 'application/json' });
  }

  private queueOf(d: { queue: string; prefix?: string | undefined; redisUrl?: string | undefined }): Queue {
    const key = `${d.redisUrl ?? ''}\n${d.prefix ?? 'bull'}\n${d.queue}`;
    let q = this.queues.get(key);
    if (!q) {
      let connection = this.redis;
      if (d.redisUrl) {
        connection = new Redis(d.redisUrl, { maxRetriesPerRequest: null });
        connection.on('error', () => {}); // a failed add is the delivery's error, retried
        this.connections.push(connection);
      }
      q = new Queue(d.queue, { connection, prefix: d.prefix ?? 'bull' });
      q.on('error', () => {});
      this.queues.set(key, q);
    }
    return q;
  }

  private async toQueue(outcome: Outcome, d: { queue: string; prefix?: string | undefined; redisUrl?: string | undefined }): Promise<void> {
    // The invocation's id as the job's: BullMQ adds nothing for an id it holds already.
    await this.queueOf(d).add('outcome', outcome, { jobId: outcome.invocationId });
  }

  private async toFunction(outcome: Outcome, fn: string, on: string): Promise<void> {
    const depth = (outcome.source.kind === 'destination' ? (outcome.source.depth ?? 1) : 0) + 1;
    if (depth > MAX_DESTINATION_DEPTH) throw new UnrecoverableError(`a chain of ${MAX_DESTINATION_DEPTH} function destinations ends here (a loop between functions' onSuccess/onFailure?)`);
    const version = await this.registry.currentVersion(fn);
    if (!version) throw new UnrecoverableError(`the destination function ${fn} does not exist`);
    const settings = await this.registry.asyncSettingsOf(fn, version);
    const now = Date.now();
    const job: InvocationJob = {
      invocationId: derivedId(outcome.invocationId, on, fn),
      function: fn,
      version,
      event: outcome,
      mode: 'async',
      enqueuedAt: now,
      deadline: now + this.cfg.maxEventAgeMs,
      delivery: { idempotencyKey: `destination:${outcome.invocationId}:${on}`, source: { kind: 'destination', from: outcome.invocationId, depth } },
    };
    try {
      await acceptAsync(this.accept, { name: fn, ...(settings ? { async: settings } : {}) }, job);
    } catch (err) {
      // QUEUE_FULL (the function's room is taken) passes: the next try may find room.
      if (err instanceof FaasboxError && err.code !== 'QUEUE_FULL') throw new UnrecoverableError(`${err.code}: ${err.message}`);
      throw err;
    }
  }

  private async openfaas(outcome: Outcome, url: string, http: { status: number; headers: Record<string, string>; body: string } | undefined): Promise<void> {
    let body: Buffer;
    let status: number;
    const headers: Record<string, string> = {};
    if (http) {
      body = Buffer.from(http.body, 'base64');
      status = http.status;
      const type = Object.entries(http.headers).find(([k]) => k.toLowerCase() === 'content-type');
      headers['content-type'] = type?.[1] ?? 'application/octet-stream';
    } else if (outcome.status === 'succeeded') {
      body = Buffer.from(JSON.stringify(outcome.result ?? null));
      status = 200;
      headers['content-type'] = 'application/json';
    } else {
      body = Buffer.from(JSON.stringify({ error: outcome.error }));
      status = failureStatus(outcome.error?.code);
      headers['content-type'] = 'application/json';
    }
    headers['x-call-id'] = outcome.invocationId;
    headers['x-function-name'] = outcome.function;
    headers['x-function-status'] = String(status);
    if (outcome.timings) headers['x-duration-seconds'] = (outcome.timings.totalMs / 1000).toFixed(6);
    await this.post(outcome, url, body, headers);
  }

  private async post(outcome: Outcome, url: string, body: Buffer, headers: Record<string, string>): Promise<void> {
    if (!this.cfg.secrets) throw new UnrecoverableError(`callback to ${redacted(url)}: no secret key to sign it with (FAASBOX_SECRET_KEY, the same for every service)`);
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = signCallback(callbackSecret(this.cfg.secrets, outcome.function), timestamp, body);
    await sendCallback(this.cfg.policy, {
      url,
      body,
      headers: { ...headers, [INVOCATION_ID_HEADER]: outcome.invocationId, [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: signature },
      timeoutMs: this.cfg.settings.timeoutMs,
    });
  }

  async close(): Promise<void> {
    await this.worker.close();
    for (const q of this.queues.values()) await q.close().catch(() => {});
    await this.client.close();
    await this.redis.quit().catch(() => {});
    for (const c of this.connections) await c.quit().catch(() => {});
  }
}
