/**
 * `faasbox up` (the all-in-one dev stack) and `faasbox gateway|worker` (one service
 * each, as a Kubernetes deployment runs them). Configuration: cli/config.ts.
 */
import { engineEnv } from './engine-env.js';
import type { WorkerConfig } from '../worker/main.js';
import { settingsFromEnv } from '../worker/engine/network/options.js';
import { parseArgs } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, generateApiKey, limitsOf, sizingOf, callbackPolicyOf, destinationsOf, writeClientInfo, type FaasboxConfig } from './config.js';
import { ensureRedisInstalled, startRedisServer, type RedisServer } from './redis.js';
import { loadSecretBox } from './secret-key.js';

const UP_HELP = `Usage: faasbox up [--config FILE] [--json]

Starts the all-in-one stack on this machine: its own redis-server (installed from the
distribution's packages if missing; data and append-only log under the state dir), the
gateway, a worker and the scheduler. Prints where to reach them; Ctrl-C stops everything.

Environment (a --config JSON file may set the same, in camelCase):
  FAASBOX_PORT               gateway port (default 8080)
  FAASBOX_API_KEY            management API key (default: generated once, stored in the state dir)
  FAASBOX_SECRET_KEY         key sealing function env values in Redis (AES-256-GCM): 64 hex
                             digits or base64 of 32 bytes (default: generated once into the
                             state dir's secret-key, 0600); every service needs the same
  FAASBOX_STATE_DIR          state directory (default /var/lib/faasbox)
  FAASBOX_REDIS_URL          use this Redis instead of starting one
  FAASBOX_WORKER_MEMORY_MB   memory the worker may give to containers (default 4096)
  FAASBOX_POOLS              0 disables warm pools (every invocation cold)
  FAASBOX_USERNS             1: every container in a user namespace of its own (root inside = an
                             unprivileged host id range per container; needs Linux 5.19+)
  FAASBOX_HEADERS_TIMEOUT_MS time for a request's headers (default 10000), then 408
  FAASBOX_REQUEST_TIMEOUT_MS time for a whole request, body included (default 60000), then 408
  FAASBOX_MAX_JSON_DEPTH     deepest nesting of a JSON body (default 64), deeper is 400
  FAASBOX_METRICS_TOKEN      a bearer token that may read /metrics (the API key always may)
  FAASBOX_METRICS_PUBLIC     1: /metrics without a token (default: a token is required)
  FAASBOX_FREEZE_GRACE_MS    idle warm containers are frozen (cgroup freezer) this long after
                             their invocation (default 50; 0: never frozen)
  FAASBOX_MAX_RESULT_BYTES   largest result a function may answer with (default 6m; beyond: 502 RESULT_TOO_LARGE)
  FAASBOX_REDIS_FSYNC        the dev stack's Redis appendfsync: always (default: an acknowledged
                             write is on disk) or everysec (faster; a machine crash may lose ~1 s)
  FAASBOX_DRAIN_GRACE_MS     on SIGTERM, how long in-flight invocations (worker) and open requests
                             (gateway) may take to finish (default 30000); then the worker returns
                             what still runs to the queue, not as a failed attempt

Pool sizing, decided by the scheduler (a worker uses it alone only while it has no
fresh decision from a scheduler):
  FAASBOX_POOL_MIN_WARM      warm containers kept per function when idle (default 0: scale to zero)
  FAASBOX_POOL_MAX_WARM      warm containers per function at most (default 32)
  FAASBOX_POOL_IDLE_TTL_MS   idle time after which a function drops to the minimum (default 600000)
  FAASBOX_POOL_SCALE_DOWN_DELAY_MS
                             idle time before a container above the target goes (default 30000)
  FAASBOX_POOL_WINDOW_MS     window over which demand is averaged (default 60000)
  FAASBOX_POOL_MIN_STEMS     stem cells per runtime shape at least (default 1)
  FAASBOX_POOL_MAX_STEMS     stem cells per runtime shape at most (default 16)`;

const SERVICE_HELP = `Usage: faasbox gateway|worker|scheduler [--config FILE]

Runs one service in the foreground. Needs FAASBOX_REDIS_URL (or redisUrl in the file);
the gateway needs FAASBOX_API_KEY. The gateway and the worker take FAASBOX_SECRET_KEY (or
the state dir's secret-key file); without one, functions with env values are refused.
See faasbox up --help for the settings.`;

/** What the gateway takes from the shared configuration besides its address and key. */
function gatewaySettings(cfg: FaasboxConfig) {
  return {
    headersTimeoutMs: cfg.headersTimeoutMs,
    requestTimeoutMs: cfg.requestTimeoutMs,
    maxJsonDepth: cfg.maxJsonDepth,
    metricsPublic: cfg.metricsPublic,
    callbackAllow: callbackPolicyOf(cfg).allow,
    callbackDeny: callbackPolicyOf(cfg).deny,
    drainGraceMs: cfg.drainGraceMs,
    ...(cfg.metricsToken ? { metricsToken: cfg.metricsToken } : {}),
  };
}

/** What the scheduler's triggers take from the shared configuration: the gateway's bounds on an invoke. */
function triggerSettings(cfg: FaasboxConfig) {
  return { maxJsonDepth: cfg.maxJsonDepth, queuedBytesPerFunction: limitsOf(cfg).queuedBytesPerFunction, deadLettersPerFunction: cfg.deadLettersPerFunction };
}

function log(line: string): void {
  process.stderr.write(`faasbox: ${line}\n`);
}

/** Resolves on SIGINT/SIGTERM. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  });
}

function apiKeyFor(cfg: FaasboxConfig): string {
  if (cfg.apiKey) return cfg.apiKey;
  const file = path.join(cfg.stateDir, 'api-key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  return '';
}

export async function up(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(UP_HELP);
    return 0;
  }
  const cfg = loadConfig(values.config);
  const cleanup: (() => Promise<unknown>)[] = [];
  let stoppingSince = 0;
  const stop = async () => {
    stoppingSince = Date.now();
    for (const c of cleanup.reverse()) await c().catch((e: Error) => log(`shutdown: ${e.message}`));
  };
  try {
    let redisUrl = cfg.redisUrl;
    let redis: RedisServer | undefined;
    if (!redisUrl) {
      ensureRedisInstalled(log);
      redis = await startRedisServer({ dir: path.join(cfg.stateDir, 'redis'), maxMemoryMb: cfg.redisMaxMemoryMb, fsync: cfg.redisFsync });
      cleanup.push(() => redis!.stop());
      redisUrl = redis.url;
    }
    let apiKey = apiKeyFor(cfg);
    let generated = false;
    if (!apiKey) {
      apiKey = generateApiKey();
      generated = true;
      const { writeFileSync, mkdirSync } = await import('node:fs');
      mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
      writeFileSync(path.join(cfg.stateDir, 'api-key'), `${apiKey}\n`, { mode: 0o600 });
    }
    // One key for all three services, created on the first start.
    const secrets = loadSecretBox(cfg, { create: true });
    const { startWorker } = await import('../worker/main.js');
    const { Registry, collectDefaultMetrics } = await import('prom-client');
    // One process, one /metrics: the gateway serves the worker's metrics too.
    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
    log('starting the worker (first start builds the runtime images)...');
    const worker = await startWorker({ redisUrl, prefix: cfg.prefix, stateDir: cfg.stateDir, budgetMb: cfg.workerMemoryMb, pools: cfg.pools, freezeGraceMs: cfg.freezeGraceMs, userns: cfg.userns ?? false, sizing: sizingOf(cfg), maxResultBytes: cfg.maxResultBytes, limits: limitsOf(cfg), drainGraceMs: cfg.drainGraceMs, metrics, secrets, network: settingsFromEnv(process.env), ...workerEngine() });
    // The gateway drains first (its open sync requests need this worker), then the worker
    // gets what is left of the same grace: Ctrl-C or SIGTERM takes one grace, not two.
    cleanup.push(() => worker.close({ graceMs: Math.max(0, cfg.drainGraceMs - (Date.now() - stoppingSince)) }));
    const { startScheduler } = await import('../scheduler/main.js');
    const scheduler = await startScheduler({ redisUrl, prefix: cfg.prefix, sizing: sizingOf(cfg), metrics, triggers: triggerSettings(cfg), destinations: destinationsOf(cfg), secrets });
    cleanup.push(() => scheduler.close());
    const { startGateway } = await import('../gateway/main.js');
    const gateway = await startGateway({ apiKey, redisUrl, prefix: cfg.prefix, port: cfg.port, host: cfg.host, ...gatewaySettings(cfg), limits: limitsOf(cfg) }, { metrics, secrets });
    cleanup.push(() => gateway.close());
    writeClientInfo(cfg.stateDir, { url: gateway.url, apiKey });
    // The socket's path, never the password that the URL carries.
    const info = { gateway: gateway.url, metrics: `${gateway.url}/metrics`, redis: redis ? redis.socket : '(FAASBOX_REDIS_URL)', stateDir: cfg.stateDir, worker: worker.id, apiKey: generated ? apiKey : '(from FAASBOX_API_KEY or the state dir)' };
    if (values.json) console.log(JSON.stringify(info));
    else {
      console.log(`faasbox is up
  gateway   ${info.gateway}
  metrics   ${info.metrics}
  redis     ${info.redis}${redis ? ` (pid ${redis.pid}, data in ${redis.dir}, password in ${redis.passwordFile})` : ''}
  worker    ${info.worker} (memory budget ${cfg.workerMemoryMb} MB, pools ${cfg.pools ? 'on' : 'off'})
  state     ${info.stateDir}
  api key   ${generated ? apiKey : info.apiKey}

Try:
  npx faasbox deploy hello --code 'export default async (event) => ({ hello: event.name ?? "world" })'
  npx faasbox invoke hello --data '{"name":"faasbox"}'`);
    }
    const sig = await untilSignal();
    log(`${sig}: stopping`);
    await stop();
    return 0;
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function service(which: 'gateway' | 'worker' | 'scheduler', argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(SERVICE_HELP);
    return 0;
  }
  const cfg = loadConfig(values.config);
  if (!cfg.redisUrl) throw new Error(`${which}: set FAASBOX_REDIS_URL (or redisUrl in the config file)`);
  let close: () => Promise<void>;
  if (which === 'scheduler') {
    const { startScheduler } = await import('../scheduler/main.js');
    const sizing = sizingOf(cfg);
    const sch = await startScheduler({
      redisUrl: cfg.redisUrl,
      prefix: cfg.prefix,
      sizing,
      triggers: triggerSettings(cfg),
      destinations: destinationsOf(cfg),
      secrets: loadSecretBox(cfg, { create: false }),
      onRescue: (e) => log(`moved ${e.moved} invocations from ${e.queue} (its worker went silent) to the shared queue`),
      onLeader: (leading) => log(leading ? 'leading: orphan rescue, pool sizing and triggers run here' : 'no longer leading'),
    });
    log(`scheduler watching worker reports; sizing pools: warm ${sizing.minWarm}..${sizing.maxWarm} per function (idle TTL ${sizing.idleTtlMs} ms), stems ${sizing.minStems}..${sizing.maxStems} per shape`);
    close = sch.close;
  } else if (which === 'gateway') {
    const apiKey = apiKeyFor(cfg);
    if (!apiKey) throw new Error('gateway: set FAASBOX_API_KEY');
    const { startGateway } = await import('../gateway/main.js');
    const g = await startGateway({ apiKey, redisUrl: cfg.redisUrl, prefix: cfg.prefix, port: cfg.port, host: cfg.host, ...gatewaySettings(cfg), limits: limitsOf(cfg) }, { secrets: loadSecretBox(cfg, { create: false }) });
    log(`gateway listening on ${g.url}`);
    close = g.close;
  } else {
    const { MetricsGuard } = await import('../gateway/metrics-auth.js');
    const guard = new MetricsGuard([cfg.metricsToken, apiKeyFor(cfg)], cfg.metricsPublic);
    if (!guard.isPublic && !guard.hasTokens) {
      throw new Error('worker: its /metrics needs a token: set FAASBOX_METRICS_TOKEN (or FAASBOX_API_KEY), or FAASBOX_METRICS_PUBLIC=1 to serve them to anyone');
    }
    const { startWorker } = await import('../worker/main.js');
    const w = await startWorker({ redisUrl: cfg.redisUrl, prefix: cfg.prefix, stateDir: cfg.stateDir, budgetMb: cfg.workerMemoryMb, pools: cfg.pools, freezeGraceMs: cfg.freezeGraceMs, userns: cfg.userns ?? false, sizing: sizingOf(cfg), maxResultBytes: cfg.maxResultBytes, limits: limitsOf(cfg), drainGraceMs: cfg.drainGraceMs, secrets: loadSecretBox(cfg, { create: false }), network: settingsFromEnv(process.env), ...workerEngine() });
    const { serveMetrics } = await import('./metrics-server.js');
    const { server: srv, port } = await serveMetrics(w.metrics, guard, cfg.workerMetricsPort, cfg.host, w.health);
    log(`worker ${w.id} consuming invocations (budget ${cfg.workerMemoryMb} MB); metrics on http://${cfg.host}:${port}/metrics, probes /healthz and /readyz`);
    close = async () => {
      // The server outlives the drain, so that /readyz answers 503 (stopping) meanwhile.
      await w.close();
      srv.close();
    };
  }
  const sig = await untilSignal();
  log(`${sig}: stopping`);
  await close();
  return 0;
}

/** The worker's engine settings from the environment (the state dir comes from the config). */
function workerEngine(): Pick<WorkerConfig, 'cgroupRoot' | 'engine'> {
  const { stateDir: _stateDir, cgroupRoot, ...engine } = engineEnv();
  return { ...(cgroupRoot ? { cgroupRoot } : {}), engine };
}
