/**
 * faasbox's configuration, one object for every service: defaults, then a JSON file
 * (--config FILE or $FAASBOX_CONFIG), then the environment, which wins.
 */
import { readFileSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CliError, parseBytes, parseNumber } from './args.js';
import { DEFAULT_MAX_RESULT_BYTES } from '../worker/instance/instance.js';
import { DEFAULT_SIZING, validateSizing, type SizingConfig } from '../common/policy/sizing.js';
import { DEFAULT_CONFIG } from '../gateway/config.js';
import { DEFAULT_FREEZE_GRACE_MS } from '../worker/pool/pool.js';
import { DEFAULT_REDIS_FSYNC, DEFAULT_REDIS_MAXMEMORY_MB, REDIS_FSYNC_MODES, isRedisFsync, type RedisFsync } from './redis.js';
import { DEFAULT_DRAIN_GRACE_MS } from '../common/drain.js';
import { DEFAULT_STORAGE_LIMITS, STORAGE_LIMITS_ENV, storageLimits, type StorageLimits } from '../common/limits.js';
import { HostPolicy, splitList } from '../common/delivery/host-policy.js';
import { DEFAULT_DESTINATION_SETTINGS } from '../scheduler/destinations.js';

export interface FaasboxConfig extends StorageLimits {
  stateDir: string;
  /** Gateway port (FAASBOX_PORT). */
  port: number;
  host: string;
  apiKey?: string;
  /** Key sealing function env values (FAASBOX_SECRET_KEY: 64 hex digits or base64 of 32 bytes); see cli/secret-key.ts. */
  secretKey?: string;
  /** An existing Redis (FAASBOX_REDIS_URL); when unset, `faasbox up` starts its own. */
  redisUrl?: string;
  prefix: string;
  /** Memory the worker may give to containers (FAASBOX_WORKER_MEMORY_MB). */
  workerMemoryMb: number;
  /** Warm pools (FAASBOX_POOLS=0 disables them: every invocation is cold). */
  pools: boolean;
  /** Gateway: time for a request's headers, and for the whole request (FAASBOX_HEADERS_TIMEOUT_MS, FAASBOX_REQUEST_TIMEOUT_MS); past either, 408. */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** Gateway: deepest nesting of a JSON body (FAASBOX_MAX_JSON_DEPTH); deeper is 400. */
  maxJsonDepth: number;
  /** A bearer token for the gateway's and a worker's /metrics, besides the API key (FAASBOX_METRICS_TOKEN). */
  metricsToken?: string;
  /** /metrics without a token (FAASBOX_METRICS_PUBLIC=1): an explicit opt-out. */
  metricsPublic: boolean;
  /** Port of a standalone worker's /metrics (FAASBOX_WORKER_METRICS_PORT). */
  workerMetricsPort: number;
  /** Idle warm containers are frozen after this many ms (FAASBOX_FREEZE_GRACE_MS); 0: never. */
  freezeGraceMs: number;
  /** Every container of the worker in a user namespace of its own (FAASBOX_USERNS=1). */
  userns?: boolean;
  /** Longest result a function may answer with, in bytes (FAASBOX_MAX_RESULT_BYTES: 6291456 or 6m; 6 MiB, Lambda's sync limit). */
  maxResultBytes: number;
  /**
   * Pool sizing (FAASBOX_POOL_*): the scheduler decides with these; a worker uses them
   * itself only while no scheduler decision is fresh. See sizingOf().
   */
  poolMinWarm: number;
  poolMaxWarm: number;
  poolIdleTtlMs: number;
  poolScaleDownDelayMs: number;
  poolWindowMs: number;
  poolMinStems: number;
  poolMaxStems: number;
  /** The dev stack's Redis maxmemory in MiB (FAASBOX_REDIS_MAXMEMORY_MB); it refuses writes beyond (noeviction). */
  redisMaxMemoryMb: number;
  /**
   * Callback host policy (common/delivery/host-policy.ts), comma- or space-separated CIDRs,
   * addresses or hostnames: always permitted (FAASBOX_CALLBACK_ALLOW), and refused besides
   * the default deny list of loopback, private, link-local and the machine's own addresses
   * (FAASBOX_CALLBACK_DENY; "*" refuses all that is not allowed).
   */
  callbackAllow: string;
  callbackDeny: string;
  /** Tries per destination delivery (FAASBOX_CALLBACK_MAX_ATTEMPTS), the wait after the first failure, doubling (FAASBOX_CALLBACK_DELAY_MS), one request's bound (FAASBOX_CALLBACK_TIMEOUT_MS). */
  callbackMaxAttempts: number;
  callbackDelayMs: number;
  callbackTimeoutMs: number;
  /** The dev stack's Redis appendfsync (FAASBOX_REDIS_FSYNC: always or everysec); see cli/redis.ts. */
  redisFsync: RedisFsync;
  /**
   * SIGTERM drain of a worker and of a gateway (FAASBOX_DRAIN_GRACE_MS): how long what is
   * in flight may take to finish before the worker returns it to the queue and the
   * gateway closes the connections still open.
   */
  drainGraceMs: number;
}

const DEFAULTS: FaasboxConfig = {
  stateDir: '/var/lib/faasbox',
  port: 8080,
  host: '127.0.0.1',
  prefix: 'faasbox',
  workerMemoryMb: 4096,
  pools: true,
  workerMetricsPort: 9464,
  headersTimeoutMs: DEFAULT_CONFIG.headersTimeoutMs,
  requestTimeoutMs: DEFAULT_CONFIG.requestTimeoutMs,
  maxJsonDepth: DEFAULT_CONFIG.maxJsonDepth,
  metricsPublic: false,
  freezeGraceMs: DEFAULT_FREEZE_GRACE_MS,
  maxResultBytes: DEFAULT_MAX_RESULT_BYTES,
  poolMinWarm: DEFAULT_SIZING.minWarm,
  poolMaxWarm: DEFAULT_SIZING.maxWarm,
  poolIdleTtlMs: DEFAULT_SIZING.idleTtlMs,
  poolScaleDownDelayMs: DEFAULT_SIZING.scaleDownDelayMs,
  poolWindowMs: DEFAULT_SIZING.windowMs,
  poolMinStems: DEFAULT_SIZING.minStems,
  poolMaxStems: DEFAULT_SIZING.maxStems,
  redisMaxMemoryMb: DEFAULT_REDIS_MAXMEMORY_MB,
  callbackAllow: '',
  callbackDeny: '',
  callbackMaxAttempts: DEFAULT_DESTINATION_SETTINGS.maxAttempts,
  callbackDelayMs: DEFAULT_DESTINATION_SETTINGS.delayMs,
  callbackTimeoutMs: DEFAULT_DESTINATION_SETTINGS.timeoutMs,
  redisFsync: DEFAULT_REDIS_FSYNC,
  drainGraceMs: DEFAULT_DRAIN_GRACE_MS,
  ...DEFAULT_STORAGE_LIMITS,
};

/** Environment variable -> gateway setting. */
const GATEWAY_ENV = {
  FAASBOX_HEADERS_TIMEOUT_MS: 'headersTimeoutMs',
  FAASBOX_REQUEST_TIMEOUT_MS: 'requestTimeoutMs',
  FAASBOX_MAX_JSON_DEPTH: 'maxJsonDepth',
} as const;

/** Environment variable -> sizing setting. */
const POOL_ENV = {
  FAASBOX_POOL_MIN_WARM: 'poolMinWarm',
  FAASBOX_POOL_MAX_WARM: 'poolMaxWarm',
  FAASBOX_POOL_IDLE_TTL_MS: 'poolIdleTtlMs',
  FAASBOX_POOL_SCALE_DOWN_DELAY_MS: 'poolScaleDownDelayMs',
  FAASBOX_POOL_WINDOW_MS: 'poolWindowMs',
  FAASBOX_POOL_MIN_STEMS: 'poolMinStems',
  FAASBOX_POOL_MAX_STEMS: 'poolMaxStems',
} as const;

/** Environment variable -> destination delivery setting. */
const CALLBACK_ENV = {
  FAASBOX_CALLBACK_MAX_ATTEMPTS: 'callbackMaxAttempts',
  FAASBOX_CALLBACK_DELAY_MS: 'callbackDelayMs',
  FAASBOX_CALLBACK_TIMEOUT_MS: 'callbackTimeoutMs',
} as const;

/** The callback host policy's lists, checked (a malformed entry is refused, naming its setting). */
export function callbackPolicyOf(cfg: FaasboxConfig): { allow: string[]; deny: string[] } {
  const lists = { allow: splitList(cfg.callbackAllow), deny: splitList(cfg.callbackDeny) };
  try {
    new HostPolicy(lists);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  return lists;
}

/** What the scheduler's delivery worker takes: the host policy and its retries. */
export function destinationsOf(cfg: FaasboxConfig) {
  return {
    policy: callbackPolicyOf(cfg),
    settings: { maxAttempts: cfg.callbackMaxAttempts, delayMs: cfg.callbackDelayMs, timeoutMs: cfg.callbackTimeoutMs },
  };
}

/** The pool sizing the settings describe, checked (a floor above its ceiling is refused). */
export function sizingOf(cfg: FaasboxConfig): SizingConfig {
  try {
    return validateSizing({
      minWarm: cfg.poolMinWarm,
      maxWarm: cfg.poolMaxWarm,
      idleTtlMs: cfg.poolIdleTtlMs,
      scaleDownDelayMs: cfg.poolScaleDownDelayMs,
      windowMs: cfg.poolWindowMs,
      minStems: cfg.poolMinStems,
      maxStems: cfg.poolMaxStems,
    });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** What each function may hold in Redis, checked (each a positive integer). */
export function limitsOf(cfg: FaasboxConfig): StorageLimits {
  try {
    return storageLimits({
      queuedBytesPerFunction: cfg.queuedBytesPerFunction,
      recordsPerFunction: cfg.recordsPerFunction,
      versionsPerFunction: cfg.versionsPerFunction,
      completedJobsKept: cfg.completedJobsKept,
      failedJobsKept: cfg.failedJobsKept,
    });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): FaasboxConfig {
  const cfg: FaasboxConfig = { ...DEFAULTS };
  const f = file ?? env.FAASBOX_CONFIG;
  if (f) {
    if (!existsSync(f)) throw new CliError(`config file ${f} does not exist`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(f, 'utf8'));
    } catch (err) {
      throw new CliError(`config file ${f} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CliError(`config file ${f} must hold a JSON object`);
    for (const [k, v] of Object.entries(parsed)) {
      if (!(k in DEFAULTS) && k !== 'apiKey' && k !== 'secretKey' && k !== 'metricsToken' && k !== 'redisUrl') throw new CliError(`config file ${f}: unknown setting "${k}"`);
      if (k in DEFAULTS && typeof v !== typeof DEFAULTS[k as keyof FaasboxConfig]) throw new CliError(`config file ${f}: "${k}" must be a ${typeof DEFAULTS[k as keyof FaasboxConfig]}`);
      (cfg as unknown as Record<string, unknown>)[k] = v;
    }
  }
  if (env.FAASBOX_STATE_DIR) cfg.stateDir = env.FAASBOX_STATE_DIR;
  if (env.FAASBOX_PORT) cfg.port = parseNumber('FAASBOX_PORT', env.FAASBOX_PORT);
  if (env.FAASBOX_HOST) cfg.host = env.FAASBOX_HOST;
  if (env.FAASBOX_API_KEY) cfg.apiKey = env.FAASBOX_API_KEY;
  if (env.FAASBOX_SECRET_KEY) cfg.secretKey = env.FAASBOX_SECRET_KEY;
  if (env.FAASBOX_METRICS_TOKEN) cfg.metricsToken = env.FAASBOX_METRICS_TOKEN;
  if (env.FAASBOX_METRICS_PUBLIC) cfg.metricsPublic = ['1', 'true', 'yes', 'on'].includes(env.FAASBOX_METRICS_PUBLIC.toLowerCase());
  if (env.FAASBOX_REDIS_URL) cfg.redisUrl = env.FAASBOX_REDIS_URL;
  if (env.FAASBOX_PREFIX) cfg.prefix = env.FAASBOX_PREFIX;
  if (env.FAASBOX_WORKER_MEMORY_MB) cfg.workerMemoryMb = parseNumber('FAASBOX_WORKER_MEMORY_MB', env.FAASBOX_WORKER_MEMORY_MB);
  if (env.FAASBOX_WORKER_METRICS_PORT) cfg.workerMetricsPort = parseNumber('FAASBOX_WORKER_METRICS_PORT', env.FAASBOX_WORKER_METRICS_PORT);
  for (const [name, key] of Object.entries(GATEWAY_ENV)) {
    const v = env[name];
    if (v) cfg[key] = parseNumber(name, v, 'positive');
  }
  if (env.FAASBOX_FREEZE_GRACE_MS) cfg.freezeGraceMs = parseNumber('FAASBOX_FREEZE_GRACE_MS', env.FAASBOX_FREEZE_GRACE_MS);
  if (env.FAASBOX_MAX_RESULT_BYTES) cfg.maxResultBytes = parseBytes('FAASBOX_MAX_RESULT_BYTES', env.FAASBOX_MAX_RESULT_BYTES);
  if (!Number.isInteger(cfg.maxResultBytes) || cfg.maxResultBytes < 1024) throw new CliError(`maxResultBytes (FAASBOX_MAX_RESULT_BYTES) must be a whole number of bytes, at least 1024; got ${cfg.maxResultBytes}`);
  if (env.FAASBOX_USERNS) {
    const v = env.FAASBOX_USERNS.toLowerCase();
    if (!['0', '1', 'true', 'false', 'yes', 'no', 'on', 'off'].includes(v)) throw new CliError(`FAASBOX_USERNS must be 1 or 0, got "${env.FAASBOX_USERNS}"`);
    cfg.userns = ['1', 'true', 'yes', 'on'].includes(v);
  }
  if (env.FAASBOX_POOLS) cfg.pools = !['0', 'false', 'no', 'off'].includes(env.FAASBOX_POOLS.toLowerCase());
  for (const [name, key] of Object.entries(POOL_ENV)) {
    const v = env[name];
    if (v) cfg[key] = parseNumber(name, v);
  }
  for (const [name, key] of Object.entries(STORAGE_LIMITS_ENV)) {
    const v = env[name];
    if (v) cfg[key] = parseNumber(name, v);
  }
  if (env.FAASBOX_REDIS_MAXMEMORY_MB) cfg.redisMaxMemoryMb = parseNumber('FAASBOX_REDIS_MAXMEMORY_MB', env.FAASBOX_REDIS_MAXMEMORY_MB);
  if (env.FAASBOX_CALLBACK_ALLOW !== undefined) cfg.callbackAllow = env.FAASBOX_CALLBACK_ALLOW;
  if (env.FAASBOX_CALLBACK_DENY !== undefined) cfg.callbackDeny = env.FAASBOX_CALLBACK_DENY;
  for (const [name, key] of Object.entries(CALLBACK_ENV)) {
    const v = env[name];
    if (v) cfg[key] = parseNumber(name, v, 'positive');
  }
  callbackPolicyOf(cfg);
  if (env.FAASBOX_REDIS_FSYNC) cfg.redisFsync = env.FAASBOX_REDIS_FSYNC.trim().toLowerCase() as RedisFsync;
  if (!isRedisFsync(cfg.redisFsync)) throw new CliError(`redisFsync (FAASBOX_REDIS_FSYNC) must be one of ${REDIS_FSYNC_MODES.join(', ')}; got "${env.FAASBOX_REDIS_FSYNC ?? cfg.redisFsync}"`);
  if (env.FAASBOX_DRAIN_GRACE_MS) cfg.drainGraceMs = parseNumber('FAASBOX_DRAIN_GRACE_MS', env.FAASBOX_DRAIN_GRACE_MS, 'whole');
  if (!Number.isInteger(cfg.drainGraceMs) || cfg.drainGraceMs < 0) throw new CliError(`drainGraceMs (FAASBOX_DRAIN_GRACE_MS) must be a whole number of ms; got ${cfg.drainGraceMs}`);
  sizingOf(cfg);
  limitsOf(cfg);
  cfg.stateDir = path.resolve(cfg.stateDir);
  return cfg;
}

/** Where `faasbox up` leaves the address and key for the CLI's other commands. */
export function clientFile(stateDir: string): string {
  return path.join(stateDir, 'client.json');
}

export interface ClientInfo {
  url: string;
  apiKey: string;
}

export function writeClientInfo(stateDir: string, info: ClientInfo): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(clientFile(stateDir), JSON.stringify(info), { mode: 0o600 });
}

/** FAASBOX_URL / FAASBOX_API_KEY, else what `faasbox up` stored. */
export function clientInfo(env: NodeJS.ProcessEnv = process.env): ClientInfo {
  let stored: Partial<ClientInfo> = {};
  const stateDir = path.resolve(env.FAASBOX_STATE_DIR ?? DEFAULTS.stateDir);
  try {
    stored = JSON.parse(readFileSync(clientFile(stateDir), 'utf8')) as ClientInfo;
  } catch {
    // no stack running from this state dir
  }
  const url = env.FAASBOX_URL || stored.url || `http://127.0.0.1:${env.FAASBOX_PORT ?? DEFAULTS.port}`;
  const apiKey = env.FAASBOX_API_KEY || stored.apiKey;
  if (!apiKey) throw new CliError('no API key: set FAASBOX_API_KEY, or run `faasbox up` (it stores one for the CLI)');
  return { url, apiKey };
}

export function generateApiKey(): string {
  return `fbx_${randomBytes(24).toString('base64url')}`;
}
