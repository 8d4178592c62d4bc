/** What the gateway app is built from; tests pass their own (a test Redis, a test prefix). */
import type { ConcurrencyLimiter } from '../common/concurrency.js';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { InvocationClient } from '../common/invocation-client.js';
import type { InvocationStore } from '../common/invocations.js';
import type { FunctionRegistry } from '../common/registry.js';
import type { HostPolicy } from '../common/delivery/host-policy.js';
import type { SecretBox } from '../common/secrets.js';
import type { GatewayConfig } from './config.js';
import type { ImageRequestClient } from '../common/image-requests.js';
import type { GatewayDrain } from './drain.js';

export interface GatewayDeps {
  config: GatewayConfig;
  /** Used for readiness (PING); the stores and the queue client hold their own reference. */
  redis: Redis;
  registry: FunctionRegistry;
  invocations: InvocationStore;
  queue: InvocationClient;
  /** Functions' concurrency limits (their spec's `concurrency`), across all gateways and workers. */
  concurrency: ConcurrencyLimiter;
  metrics: Registry;
  /** Which callback URLs are accepted (gateway/callbacks.ts: callbackPolicyOf(config)). */
  callbacks: HostPolicy;
  /** The deployment's key: callback secrets are derived from it (common/delivery/signature.ts). */
  secrets?: SecretBox;
  /** Image pulls and listings asked of the workers (POST/GET /v1/images). */
  images: ImageRequestClient;
  /** The SIGTERM drain (drain.ts); absent in tests that build the app alone. */
  drain?: GatewayDrain;
}
