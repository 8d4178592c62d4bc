/** Gateway configuration: defaults, and reading it from the environment. */
import { DEFAULT_UNPACK_BOUNDS, type UnpackBounds } from '../common/archive/index.js';
import { LIMITS } from '../common/function-spec.js';
import { DEFAULT_RECORD_TTL_S } from '../common/invocations.js';
import { storageLimits, type StorageLimits } from '../common/limits.js';
import { HostPolicy, splitList } from '../common/delivery/host-policy.js';
import { DEFAULT_DRAIN_GRACE_MS } from '../common/drain.js';

export interface GatewayConfig {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The management key (FAASBOX_API_KEY). Required. */
  apiKey: string;
  redisUrl: string;
  /** Prefix of every Redis key of this deployment: registry, records and the queue. */
  prefix: string;
  /** Largest deploy body (JSON, with code or base64 package). */
  maxDeployBytes: number;
  /** Largest code or package after decoding. */
  maxCodeBytes: number;
  /** What a package may unpack to, checked at deploy; workers unpack with the same bounds (keep them equal). */
  packageBounds: UnpackBounds;
  /** Largest invoke body (the event). */
  maxInvokeBytes: number;
  /** Deepest nesting of arrays and objects in a JSON body (FAASBOX_MAX_JSON_DEPTH); deeper is 400. */
  maxJsonDepth: number;
  /**
   * Time for a request's headers to arrive (FAASBOX_HEADERS_TIMEOUT_MS), and for the whole
   * request, body included (FAASBOX_REQUEST_TIMEOUT_MS); past either, 408 and the socket
   * closes. Not the time to answer: a sync invocation may take minutes after its body.
   */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** How long a sync invocation may wait in the queue for a worker before 503 NO_CAPACITY. */
  syncQueueTimeoutMs: number;
  /** Extra time, beyond the function's load and run (timeoutMs each), for container start and the reply trip. */
  syncGraceMs: number;
  /** An async invocation not started within this age is dropped by the worker (NO_CAPACITY). */
  asyncMaxAgeMs: number;
  recordTtlSeconds: number;
  /** How long the invoke path may use a function record from memory (0: always ask Redis). */
  functionCacheMs: number;
  /** A token that may read /metrics besides the management key (FAASBOX_METRICS_TOKEN). */
  metricsToken?: string;
  /** /metrics for anyone, without a token (FAASBOX_METRICS_PUBLIC=1): an explicit opt-out. */
  metricsPublic: boolean;
  /** What each function may hold in Redis (common/limits.ts). */
  limits: StorageLimits;
  /**
   * The callback host policy (common/delivery/host-policy.ts), checked when a callback URL
   * is accepted: CIDRs, addresses or hostnames always permitted (FAASBOX_CALLBACK_ALLOW),
   * and refused besides the default deny list (FAASBOX_CALLBACK_DENY). Give the scheduler
   * the same (it checks again at send time).
   */
  callbackAllow: string[];
  callbackDeny: string[];
  /** close(): how long open requests may take to be answered before their connections are closed (FAASBOX_DRAIN_GRACE_MS). */
  drainGraceMs: number;
}

/** What startGateway takes: any setting, the limits one by one. */
export type GatewayInput = Partial<Omit<GatewayConfig, 'limits'>> & { apiKey: string; limits?: Partial<StorageLimits> };

export const DEFAULT_CONFIG: Omit<GatewayConfig, 'apiKey' | 'limits'> = {
  host: '127.0.0.1',
  port: 8080,
  redisUrl: 'redis://127.0.0.1:6379',
  prefix: 'faasbox',
  maxDeployBytes: 16 * 1024 * 1024,
  maxCodeBytes: LIMITS.defaultCodeBytes,
  packageBounds: DEFAULT_UNPACK_BOUNDS,
  maxInvokeBytes: 6 * 1024 * 1024,
  maxJsonDepth: 64,
  // Node's own defaults are 60 s and 300 s: a client that sent headers and never its body
  // held a socket for 318 s (300 s plus Node's 30 s checking interval, at worst).
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  syncQueueTimeoutMs: 10_000,
  syncGraceMs: 10_000,
  asyncMaxAgeMs: 6 * 3600 * 1000,
  recordTtlSeconds: DEFAULT_RECORD_TTL_S,
  functionCacheMs: 2000,
  metricsPublic: false,
  callbackAllow: [],
  callbackDeny: [],
  drainGraceMs: DEFAULT_DRAIN_GRACE_MS,
};

export function gatewayConfig(overrides: GatewayInput): GatewayConfig {
  const config = { ...DEFAULT_CONFIG, ...overrides, limits: storageLimits(overrides.limits) };
  if (!config.apiKey) throw new Error('gateway: an API key is required (FAASBOX_API_KEY)');
  if (!Number.isInteger(config.maxJsonDepth) || config.maxJsonDepth < 1) throw new Error(`gateway: maxJsonDepth must be a positive integer, got ${config.maxJsonDepth}`);
  for (const k of ['headersTimeoutMs', 'requestTimeoutMs'] as const) {
    if (!Number.isInteger(config[k]) || config[k] < 1) throw new Error(`gateway: ${k} must be a positive integer (ms), got ${config[k]}`);
  }
  // A malformed entry refuses the start, naming the setting (HostPolicyConfigError).
  new HostPolicy({ allow: config.callbackAllow, deny: config.callbackDeny });
  // Node refuses a headers timeout longer than the request's.
  if (config.headersTimeoutMs > config.requestTimeoutMs) throw new Error(`gateway: headersTimeoutMs (${config.headersTimeoutMs}) exceeds requestTimeoutMs (${config.requestTimeoutMs})`);
  return config;
}

/** FAASBOX_PORT, FAASBOX_HOST, FAASBOX_API_KEY, FAASBOX_REDIS_URL, FAASBOX_PREFIX, FAASBOX_CALLBACK_ALLOW, FAASBOX_CALLBACK_DENY. */
export function gatewayConfigFromEnv(env: NodeJS.ProcessEnv = process.env, overrides: Partial<GatewayInput> = {}): GatewayConfig {
  const fromEnv: Partial<GatewayInput> = {};
  if (env.FAASBOX_PORT) {
    const port = Number(env.FAASBOX_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`FAASBOX_PORT is not a port: ${env.FAASBOX_PORT}`);
    fromEnv.port = port;
  }
  if (env.FAASBOX_HOST) fromEnv.host = env.FAASBOX_HOST;
  if (env.FAASBOX_REDIS_URL) fromEnv.redisUrl = env.FAASBOX_REDIS_URL;
  if (env.FAASBOX_PREFIX) fromEnv.prefix = env.FAASBOX_PREFIX;
  if (env.FAASBOX_CALLBACK_ALLOW) fromEnv.callbackAllow = splitList(env.FAASBOX_CALLBACK_ALLOW);
  if (env.FAASBOX_CALLBACK_DENY) fromEnv.callbackDeny = splitList(env.FAASBOX_CALLBACK_DENY);
  return gatewayConfig({ apiKey: env.FAASBOX_API_KEY ?? '', ...fromEnv, ...overrides });
}
