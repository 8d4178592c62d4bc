/**
 * Shared setup for gateway tests: one redis-server per test file, a fresh key prefix per
 * test (registry, records and queue all live under it, so tests cannot see each other),
 * the app built on real Redis, and a stand-in worker.
 *
 * The stand-in worker is NOT the product's worker (that runs containers and lives in
 * worker/); it is a BullMQ Worker that honours the same contract (common/queue.ts) and
 * lets each test script the outcome through the invocation's event:
 *   {"behave": "ok" | "http" | "throw" | "timeout" | "oom" | "crash" | "malformed" |
 *               "infra-fail" | "hang", ...}
 */
import { randomUUID } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { InvocationClient } from '../../common/invocation-client.js';
import { ImageRequestClient } from '../../common/image-requests.js';
import { InvocationStore } from '../../common/invocations.js';
import { QueuedBytes } from '../../common/queued-bytes.js';
import { INVOCATION_QUEUE, requestOf, type InvocationJob, type InvocationResult } from '../../common/queue.js';
import { FunctionRegistry } from '../../common/registry.js';
import { createApp } from '../../gateway/app.js';
import { callbackPolicyOf } from '../../gateway/callbacks.js';
import { gatewayConfig, type GatewayInput } from '../../gateway/config.js';
import type { GatewayDeps } from '../../gateway/deps.js';
import { ConcurrencyLimiter } from '../../common/concurrency.js';
import { SecretBox } from '../../common/secrets.js';
import type { TestRedis } from '../support/redis.js';

export const API_KEY = 'test-management-key-0123456789';
/** Seals the test functions' env values, as the deployment's key does. */
export const TEST_SECRETS = new SecretBox(SecretBox.generateKey());
export const auth = { Authorization: `Bearer ${API_KEY}` };
export const jsonHeaders = { 'Content-Type': 'application/json', ...auth };

export interface TestGateway {
  app: ReturnType<typeof createApp>;
  deps: GatewayDeps;
  prefix: string;
  redis: Redis;
  /** PUT a function with the management key; returns the parsed response. */
  deploy(name: string, body: Record<string, unknown>): Promise<{ status: number; json: any }>;
  invoke(name: string, event: unknown, init?: { headers?: Record<string, string>; query?: string }): Promise<Response>;
  startWorker(options?: { concurrency?: number }): Promise<Worker>;
  close(): Promise<void>;
}

export async function testGateway(server: TestRedis, overrides: Partial<GatewayInput> = {}): Promise<TestGateway> {
  const prefix = overrides.prefix ?? `test-${randomUUID()}`;
  const redis = new Redis(server.url, { lazyConnect: true });
  await redis.connect();
  const config = gatewayConfig({ apiKey: API_KEY, redisUrl: server.url, prefix, ...overrides });
  const queue = await InvocationClient.open({ connection: redis, prefix, kept: config.limits });
  const deps: GatewayDeps = {
    config,
    redis,
    registry: new FunctionRegistry(redis, prefix, TEST_SECRETS, config.limits.versionsPerFunction),
    invocations: new InvocationStore(redis, prefix, config.recordTtlSeconds, config.limits.recordsPerFunction),
    concurrency: new ConcurrencyLimiter(redis, prefix),
    queue,
    metrics: new Registry(),
    callbacks: callbackPolicyOf(config),
    secrets: TEST_SECRETS,
    images: new ImageRequestClient(redis, prefix, TEST_SECRETS, { pullMs: 2000, listMs: 1000 }),
  };
  const app = createApp(deps);
  const workers: { worker: Worker; connection: Redis }[] = [];

  return {
    app,
    deps,
    prefix,
    redis,
    async deploy(name, body) {
      const res = await app.request(`/v1/functions/${name}`, { method: 'PUT', headers: jsonHeaders, body: JSON.stringify(body) });
      return { status: res.status, json: await res.json() };
    },
    async invoke(name, event, init = {}) {
      return await app.request(`/v1/functions/${name}/invoke${init.query ?? ''}`, {
        method: 'POST',
        headers: { ...jsonHeaders, ...init.headers },
        body: JSON.stringify(event),
      });
    },
    async startWorker(options = {}) {
      const connection = new Redis(server.url, { maxRetriesPerRequest: null });
      const worker = new Worker<InvocationJob, InvocationResult>(INVOCATION_QUEUE, (job) => standInProcessor(deps, job), {
        connection,
        prefix,
        concurrency: options.concurrency ?? 50,
      });
      // A stand-in that throws on purpose ('infra-fail') must not print as a test failure.
      worker.on('error', () => {});
      await worker.waitUntilReady();
      workers.push({ worker, connection });
      return worker;
    },
    async close() {
      for (const { worker, connection } of workers) {
        await worker.close(true);
        connection.disconnect();
      }
      await queue.close();
      deps.images.close();
      redis.disconnect();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Plays the worker's side of the contract in common/queue.ts, with scripted outcomes. */
async function standInProcessor(deps: GatewayDeps, job: Job<InvocationJob, InvocationResult>): Promise<InvocationResult> {
  const data = job.data;
  const startedAt = Date.now();
  const queueMs = startedAt - data.enqueuedAt;
  if (startedAt > data.deadline) {
    const result: InvocationResult = {
      ok: false,
      error: { code: 'NO_CAPACITY', message: 'picked up after its deadline' },
      startKind: 'warm',
      timings: { queueMs, initMs: 0, execMs: 0, totalMs: queueMs },
    };
    await deps.invocations.complete(data.invocationId, result);
    return result;
  }
  await deps.invocations.start({ id: data.invocationId, function: data.function, version: data.version, mode: data.mode, createdAt: new Date(data.enqueuedAt) }, job.attemptsMade + 1);
  const version = await deps.registry.getVersion(data.function, data.version);
  const event = (requestOf(data).event ?? {}) as { behave?: string; stdoutBytes?: number; sleepMs?: number; [k: string]: unknown };
  const behave = event.behave ?? 'ok';
  if (event.sleepMs) await sleep(event.sleepMs);
  if (event.stdoutBytes) {
    // In chunks, as a real worker streams them.
    for (let left = event.stdoutBytes; left > 0; left -= 16 * 1024) {
      await deps.invocations.appendOutput(data.invocationId, 'stdout', 'x'.repeat(Math.min(left, 16 * 1024)));
    }
  }
  await deps.invocations.appendOutput(data.invocationId, 'stderr', `ran ${data.invocationId}\n`);
  if (behave === 'infra-fail') throw new Error('stand-in worker lost its container');
  // Unref'd: a hung job must not keep the test process alive after the worker is closed.
  if (behave === 'hang') await new Promise((r) => setTimeout(r, 60_000).unref());
  // thawMs: as a worker reports a warm container thawed for the invocation.
  const timings = { queueMs, initMs: 1.5, ...(typeof event.thawMs === 'number' ? { thawMs: event.thawMs } : {}), execMs: 2.25, totalMs: Date.now() - data.enqueuedAt };
  const base = { startKind: event.startKind === 'cold' ? ('cold' as const) : ('warm' as const), timings };
  let result: InvocationResult;
  switch (behave) {
    case 'ok':
      result = { ...base, ok: true, value: { echo: event, invocationId: data.invocationId, memoryMb: version.spec.memoryMb } };
      break;
    case 'http':
      result = {
        ...base,
        ok: true,
        http: { status: 201, headers: { 'content-type': 'text/plain', 'x-from-function': 'yes', 'content-length': '999' }, body: Buffer.from(`hello ${data.http?.method} ${data.http?.url}`).toString('base64') },
      };
      break;
    case 'throw':
      result = { ...base, ok: false, error: { code: 'FUNCTION_ERROR', message: 'boom', stack: 'Error: boom\n    at handler (index.mjs:1:1)' } };
      break;
    case 'timeout':
      result = { ...base, ok: false, error: { code: 'TIMEOUT', message: `function did not finish within ${version.spec.timeoutMs} ms` } };
      break;
    case 'oom':
      result = { ...base, ok: false, error: { code: 'OOM_KILLED', message: 'killed by the OOM killer' } };
      break;
    case 'crash':
      result = { ...base, ok: false, error: { code: 'RUNTIME_CRASHED', message: 'runtime exited with signal SIGSEGV' } };
      break;
    case 'malformed':
      return { nonsense: true } as unknown as InvocationResult;
    default:
      throw new Error(`unknown behaviour ${behave}`);
  }
  await deps.invocations.complete(data.invocationId, result);
  if (data.mode === 'async') await new QueuedBytes(deps.redis, deps.config.prefix).release(data.function, data.invocationId);
  return result;
}

export const NODE_CODE = 'export default async (event) => ({ hello: event });';
