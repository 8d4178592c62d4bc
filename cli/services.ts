/**
 * `faasbox up` (the all-in-one dev stack) and `faasbox gateway|worker` (one service
 * each, as a Kubernetes deployment runs them). Configuration: cli/config.ts.
 */
import { parseArgs } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, generateApiKey, limitsOf, sizingOf, writeClientInfo, type FaasboxConfig } from './config.js';
import { ensureRedisInstalled, startRedisServer, type RedisServer } from './redis.js';
import { scrape } from '../common/metrics.js';

const UP_HELP = `Usage: faasbox up [--config FILE] [--json]

Starts the all-in-one stack on this machine: its own redis-server (installed from the
distribution's packages if missing; data and append-only log under the state dir), the
gateway, a worker and the scheduler. Prints where to reach them; Ctrl-C stops everything.

Environment (a --config JSON file may set the same, in camelCase):
  FAASBOX_PORT               gateway port (default 8080)
  FAASBOX_API_KEY            management API key (default: generated once, stored in the state dir)
  FAASBOX_STATE_DIR          state directory (default /var/lib/faasbox)
  FAASBOX_REDIS_URL          use this Redis instead of starting one
  FAASBOX_WORKER_MEMORY_MB   memory the worker may give to containers (default 4096)
  FAASBOX_POOLS              0 disables warm pools (every invocation cold)

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
the gateway needs FAASBOX_API_KEY. See faasbox up --help for the settings.`;

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
  const stop = async () => {
    for (const c of cleanup.reverse()) await c().catch((e: Error) => log(`shutdown: ${e.message}`));
  };
  try {
    let redisUrl = cfg.redisUrl;
    let redis: RedisServer | undefined;
    if (!redisUrl) {
      ensureRedisInstalled(log);
      redis = await startRedisServer({ dir: path.join(cfg.stateDir, 'redis'), maxMemoryMb: cfg.redisMaxMemoryMb });
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
    const { startWorker } = await import('../worker/main.js');
    const { Registry, collectDefaultMetrics } = await import('prom-client');
    // One process, one /metrics: the gateway serves the worker's metrics too.
    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
    log('starting the worker (first start builds the runtime images)...');
    const worker = await startWorker({ redisUrl, prefix: cfg.prefix, stateDir: cfg.stateDir, budgetMb: cfg.workerMemoryMb, pools: cfg.pools, sizing: sizingOf(cfg), limits: limitsOf(cfg), metrics });
    cleanup.push(() => worker.close());
    const { startScheduler } = await import('../scheduler/main.js');
    const scheduler = await startScheduler({ redisUrl, prefix: cfg.prefix, sizing: sizingOf(cfg) });
    cleanup.push(() => scheduler.close());
    const { startGateway } = await import('../gateway/main.js');
    const gateway = await startGateway({ apiKey, redisUrl, prefix: cfg.prefix, port: cfg.port, host: cfg.host, limits: limitsOf(cfg) }, { metrics });
    cleanup.push(() => gateway.close());
    writeClientInfo(cfg.stateDir, { url: gateway.url, apiKey });
    const info = { gateway: gateway.url, metrics: `${gateway.url}/metrics`, redis: redisUrl, stateDir: cfg.stateDir, worker: worker.id, apiKey: generated ? apiKey : '(from FAASBOX_API_KEY or the state dir)' };
    if (values.json) console.log(JSON.stringify(info));
    else {
      console.log(`faasbox is up
  gateway   ${info.gateway}
  metrics   ${info.metrics}
  redis     ${info.redis}${redis ? ` (pid ${redis.pid}, data in ${redis.dir})` : ''}
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
    const sch = await startScheduler({ redisUrl: cfg.redisUrl, prefix: cfg.prefix, sizing, onRescue: (e) => log(`moved ${e.moved} invocations from ${e.queue} (its worker went silent) to the shared queue`) });
    log(`scheduler watching worker reports; sizing pools: warm ${sizing.minWarm}..${sizing.maxWarm} per function (idle TTL ${sizing.idleTtlMs} ms), stems ${sizing.minStems}..${sizing.maxStems} per shape`);
    close = sch.close;
  } else if (which === 'gateway') {
    const apiKey = apiKeyFor(cfg);
    if (!apiKey) throw new Error('gateway: set FAASBOX_API_KEY');
    const { startGateway } = await import('../gateway/main.js');
    const g = await startGateway({ apiKey, redisUrl: cfg.redisUrl, prefix: cfg.prefix, port: cfg.port, host: cfg.host, limits: limitsOf(cfg) });
    log(`gateway listening on ${g.url}`);
    close = g.close;
  } else {
    const { startWorker } = await import('../worker/main.js');
    const w = await startWorker({ redisUrl: cfg.redisUrl, prefix: cfg.prefix, stateDir: cfg.stateDir, budgetMb: cfg.workerMemoryMb, pools: cfg.pools, sizing: sizingOf(cfg), limits: limitsOf(cfg) });
    const { createServer } = await import('node:http');
    // The worker has no API; it serves only its metrics, for Prometheus to scrape.
    const srv = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"ROUTE_NOT_FOUND","message":"only /metrics here"}}');
        return;
      }
      void scrape(w.metrics).then((body) => res.writeHead(200, { 'content-type': w.metrics.contentType }).end(body));
    });
    await new Promise<void>((r) => srv.listen(cfg.workerMetricsPort, cfg.host, r));
    log(`worker ${w.id} consuming invocations (budget ${cfg.workerMemoryMb} MB); metrics on http://${cfg.host}:${cfg.workerMetricsPort}/metrics`);
    close = async () => {
      srv.close();
      await w.close();
    };
  }
  const sig = await untilSignal();
  log(`${sig}: stopping`);
  await close();
  return 0;
}
