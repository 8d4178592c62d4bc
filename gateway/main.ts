/**
 * The gateway as a service: connects to Redis, builds the app and serves it on
 * @hono/node-server. `faasbox gateway` and `faasbox up` call startGateway.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Redis } from 'ioredis';
import { ConcurrencyLimiter } from '../common/concurrency.js';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { InvocationClient } from '../common/invocation-client.js';
import { InvocationStore } from '../common/invocations.js';
import { FunctionRegistry, parseFunctionEvent } from '../common/registry.js';
import { forgetFunction } from '../common/metrics.js';
import type { SecretBox } from '../common/secrets.js';
import { callbackPolicyOf } from './callbacks.js';
import { ImageRequestClient } from '../common/image-requests.js';
import { createApp } from './app.js';
import { gatewayConfig, type GatewayInput } from './config.js';
import { answerClientErrors, requestTimeoutOptions } from './request-timeouts.js';
import { GatewayDrain } from './drain.js';
import { withinGrace } from '../common/drain.js';
import { reportRedisErrors } from '../common/redis-errors.js';

export interface RunningGateway {
  url: string;
  port: number;
  /**
   * The drain (SIGTERM): /readyz 503 and new requests refused at once, the open ones
   * answered within drainGraceMs, then the server and the connections close (drain.ts).
   */
  close(): Promise<void>;
}

export interface StartGatewayOptions {
  /** A registry shared with other components in the same process; default: a new one. */
  metrics?: Registry;
  /** Seals and opens functions' env values (common/secrets.ts); without it, deploys with env are refused. */
  secrets?: SecretBox;
}

export async function startGateway(
  input: GatewayInput,
  options: StartGatewayOptions = {},
): Promise<RunningGateway> {
  const config = gatewayConfig(input);
  // Auto-pipelining: under load the invocations' job adds and record writes of one event
  // loop turn go out in one write (the socket write was the largest single cost of the
  // invoke path on the gateway's side; bench/invoke's throughput rose by a sixth).
  const redis = new Redis(config.redisUrl, { lazyConnect: true, enableAutoPipelining: true });
  const log = (line: string) => console.error(`[faasbox] gateway: ${line}`);
  reportRedisErrors(redis, 'redis', log);
  const release: (() => Promise<void> | void)[] = [() => redis.disconnect()];
  const closeAll = async () => {
    for (const r of release.reverse()) await r();
  };
  try {
    await redis.connect();
    const queue = await InvocationClient.open({ connection: redis, prefix: config.prefix, kept: config.limits });
    release.push(() => queue.close());
    let metrics = options.metrics;
    if (!metrics) {
      metrics = new Registry();
      collectDefaultMetrics({ register: metrics });
    }
    const registry = new FunctionRegistry(redis, config.prefix, options.secrets, config.limits.versionsPerFunction);
    registry.cacheFinds(config.functionCacheMs);
    // Deploys and deletes through other gateways invalidate this one's cache, and a
    // deleted function's series leave its /metrics.
    const sub = redis.duplicate();
    reportRedisErrors(sub, 'redis (function events)', log);
    release.push(() => sub.disconnect());
    await sub.subscribe(registry.eventsChannel);
    const registryOfMetrics = metrics;
    sub.on('message', (_channel: string, message: string) => {
      const ev = parseFunctionEvent(message);
      if (!ev) return;
      if (config.functionCacheMs > 0) registry.invalidate(ev.name, ev.type === 'deployed' ? ev.version : undefined);
      if (ev.type === 'deleted') void forgetFunction(registryOfMetrics, ev.name);
    });
    const images = new ImageRequestClient(redis, config.prefix, options.secrets);
    release.push(() => images.close());
    const drain = new GatewayDrain();
    const app = createApp({
      drain,
      config,
      redis,
      registry,
      invocations: new InvocationStore(redis, config.prefix, config.recordTtlSeconds, config.limits.recordsPerFunction),
      queue,
      concurrency: new ConcurrencyLimiter(redis, config.prefix),
      metrics,
      callbacks: callbackPolicyOf(config),
      ...(options.secrets ? { secrets: options.secrets } : {}),
      images,
    });
    const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host, serverOptions: requestTimeoutOptions(config) }, () => resolve(s));
      s.once('error', reject);
      answerClientErrors(s as Server, config);
      drain.watch(s as Server);
    });
    release.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Sync invocations may hold connections open for minutes; close() must not wait for them.
          if ('closeAllConnections' in server) server.closeAllConnections();
        }),
    );
    const port = (server.address() as AddressInfo).port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const close = async () => {
      drain.begin();
      if (!(await withinGrace(drain.idle(), config.drainGraceMs))) {
        console.error(`[faasbox] gateway: drain: ${drain.openRequests} requests still open after ${config.drainGraceMs} ms; closing their connections`);
      }
      await closeAll();
    };
    return { url: `http://${host}:${port}`, port, close };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
