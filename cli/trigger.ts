/**
 * `faasbox trigger add|ls|get|rm|pause|resume`: the trigger resource of the gateway
 * (gateway/routes/triggers.ts). Flags build the body; --body FILE gives it whole.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CliError, parseNumber, wantsHelp } from './args.js';
import { call, json } from './client.js';

const HELP = `Usage: faasbox trigger <command> [options]

Commands:
  add NAME --function FN SOURCE [options]   create or replace a trigger
  ls [--json]                               list triggers with their state
  get NAME [--json]                         a trigger, its state (lag, in flight, last error, last fire)
  rm NAME                                   delete a trigger (its source keeps its events)
  pause NAME | resume NAME                  stop taking events / take them again from where it stopped

SOURCE, one of:
  --queue NAME [--queue-prefix P] [--redis-url URL]       a BullMQ queue (prefix default "bull")
  --stream KEY --group G [--reclaim-idle MS] [--redis-url URL]
                                                          a Redis Stream read by a consumer group
  --cron EXPR [--timezone TZ] [--overlap skip|allow] [--catch-up]
                                                          "*/5 * * * *", "*/2 * * * * *", "@every 30s"

Options of add:
  --version V          pin a version (sha256:...); default: the function's current one at each event
  --concurrency N      invocations in flight for this trigger (default 10)
  --batch-size N       invoke with an array of up to N events (default: one event per invocation)
  --batch-window MS    wait up to MS to fill a batch
  --max-attempts N     retry: attempts in all; --backoff exponential|fixed, --backoff-delay MS
  --on-success DEST    where each success's outcome goes; --on-failure DEST for each final failure
                       DEST: queue:NAME (a BullMQ queue of the gateway's Redis), function:NAME
                       (invoked async with the outcome), or an http(s):// callback URL
  --body FILE          the whole trigger body as JSON (flags above are then not allowed)
  --json               print the gateway's JSON answer`;

function need(name: string | undefined, what: string): string {
  if (!name) throw new CliError(`trigger ${what} needs a trigger name; see faasbox trigger --help`);
  return name;
}

/** A destination flag's value as the body's DEST shape (common/delivery-spec.ts); the gateway checks the rest. */
export function destinationOf(flag: string, value: string): Record<string, string> {
  if (/^https?:\/\//i.test(value)) return { url: value };
  const m = /^(queue|function):(.+)$/.exec(value);
  if (!m) throw new CliError(`${flag} ${JSON.stringify(value)}: give queue:NAME, function:NAME or an http(s):// URL`);
  return { [m[1]!]: m[2]! };
}

function addBody(values: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const str = (k: string) => values[k] as string | undefined;
  const sources = ['queue', 'stream', 'cron'].filter((k) => str(k) !== undefined);
  if (sources.length !== 1) throw new CliError('give exactly one source: --queue, --stream or --cron');
  let source: Record<string, unknown>;
  if (str('queue') !== undefined) {
    source = { kind: 'queue', queue: str('queue') };
    if (str('queue-prefix')) source.prefix = str('queue-prefix');
    if (str('redis-url')) source.redisUrl = str('redis-url');
  } else if (str('stream') !== undefined) {
    if (!str('group')) throw new CliError('--stream needs --group');
    source = { kind: 'stream', stream: str('stream'), group: str('group') };
    if (str('reclaim-idle')) source.reclaimIdleMs = parseNumber('--reclaim-idle', str('reclaim-idle')!, 'whole');
    if (str('redis-url')) source.redisUrl = str('redis-url');
  } else {
    source = { kind: 'cron', schedule: str('cron') };
    if (str('timezone')) source.timezone = str('timezone');
    if (str('overlap')) source.overlap = str('overlap');
    if (values['catch-up']) source.catchUp = true;
  }
  if (!str('function')) throw new CliError('trigger add needs --function');
  const body: Record<string, unknown> = { function: str('function'), source };
  if (str('version')) body.version = str('version');
  if (str('concurrency')) body.concurrency = parseNumber('--concurrency', str('concurrency')!, 'whole');
  if (str('batch-size')) body.batchSize = parseNumber('--batch-size', str('batch-size')!, 'whole');
  if (str('batch-window')) body.batchWindowMs = parseNumber('--batch-window', str('batch-window')!, 'whole');
  const retry: Record<string, unknown> = {};
  if (str('max-attempts')) retry.maxAttempts = parseNumber('--max-attempts', str('max-attempts')!, 'whole');
  if (str('backoff') || str('backoff-delay')) {
    retry.backoff = { ...(str('backoff') ? { type: str('backoff') } : {}), ...(str('backoff-delay') ? { delayMs: parseNumber('--backoff-delay', str('backoff-delay')!, 'whole') } : {}) };
  }
  if (Object.keys(retry).length) body.retry = retry;
  if (str('on-success')) body.onSuccess = destinationOf('--on-success', str('on-success')!);
  if (str('on-failure')) body.onFailure = destinationOf('--on-failure', str('on-failure')!);
  return body;
}

type View = { name: string; function: string; source: Record<string, unknown>; paused: boolean; state?: Record<string, unknown> };

function sourceText(s: Record<string, unknown>): string {
  if (s.kind === 'queue') return `queue ${String(s.prefix)}:${String(s.queue)}`;
  if (s.kind === 'stream') return `stream ${String(s.stream)} (group ${String(s.group)})`;
  return `cron "${String(s.schedule)}" ${String(s.timezone)}`;
}

function describe(t: View): string {
  const st = (t.state ?? {}) as Record<string, unknown>;
  const lines = [`${t.name}: ${sourceText(t.source)} -> ${t.function}${t.paused ? ' (paused)' : ''}`];
  lines.push(`  lag ${st.lag ?? '-'}, in flight ${st.inFlight ?? 0}, fired ${st.fired ?? 0} (succeeded ${st.succeeded ?? 0}, failed ${st.failed ?? 0}, rejected ${st.rejected ?? 0})`);
  if (st.lastFireAt) lines.push(`  last fire ${String(st.lastFireAt)}${st.lastScheduledAt ? ` (scheduled ${String(st.lastScheduledAt)})` : ''}`);
  const err = st.lastError as { message: string; at: string } | undefined;
  if (err) lines.push(`  last error at ${err.at}: ${err.message}`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || wantsHelp(argv)) {
    console.log(HELP);
    return cmd ? 0 : 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      function: { type: 'string' }, version: { type: 'string' },
      queue: { type: 'string' }, 'queue-prefix': { type: 'string' }, 'redis-url': { type: 'string' },
      stream: { type: 'string' }, group: { type: 'string' }, 'reclaim-idle': { type: 'string' },
      cron: { type: 'string' }, timezone: { type: 'string' }, overlap: { type: 'string' }, 'catch-up': { type: 'boolean' },
      concurrency: { type: 'string' }, 'batch-size': { type: 'string' }, 'batch-window': { type: 'string' },
      'max-attempts': { type: 'string' }, backoff: { type: 'string' }, 'backoff-delay': { type: 'string' },
      'on-success': { type: 'string' }, 'on-failure': { type: 'string' },
      body: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  const path = (n: string) => `/v1/triggers/${encodeURIComponent(n)}`;
  const print = (data: unknown, human: () => string) => console.log(values.json ? JSON.stringify(data) : human());
  switch (cmd) {
    case 'add': {
      const name = need(positionals[0], 'add');
      let body: unknown;
      if (values.body !== undefined) {
        try {
          body = JSON.parse(readFileSync(values.body, 'utf8'));
        } catch (err) {
          throw new CliError(`--body ${values.body}: ${(err as Error).message}`);
        }
      } else body = addBody(values);
      const t = (await json(await call('PUT', path(name), body))) as View;
      print(t, () => `trigger ${t.name}: ${sourceText(t.source)} -> ${t.function}`);
      return 0;
    }
    case 'ls': {
      const { triggers } = (await json(await call('GET', '/v1/triggers'))) as { triggers: View[] };
      print(triggers, () => (triggers.length ? triggers.map(describe).join('\n') : 'no triggers'));
      return 0;
    }
    case 'get': {
      const t = (await json(await call('GET', path(need(positionals[0], 'get'))))) as View;
      print(t, () => describe(t));
      return 0;
    }
    case 'rm': {
      const name = need(positionals[0], 'rm');
      const data = await json(await call('DELETE', path(name)));
      print(data, () => `deleted trigger ${name}`);
      return 0;
    }
    case 'pause':
    case 'resume': {
      const t = (await json(await call('POST', `${path(need(positionals[0], cmd))}/${cmd}`))) as View;
      print(t, () => `trigger ${t.name} ${t.paused ? 'paused' : 'resumed'}`);
      return 0;
    }
    default:
      throw new CliError(`unknown trigger command "${cmd}"; see faasbox trigger --help`);
  }
}
