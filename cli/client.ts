/**
 * The CLI's HTTP client commands: deploy, invoke, logs, ls, get, rm. They talk to the
 * gateway at FAASBOX_URL (or the one `faasbox up` stored) with FAASBOX_API_KEY.
 */
import { parseArgs } from 'node:util';
import { readFileSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { clientInfo } from './config.js';
import { CliError, parseNumber } from './args.js';
import type { InvocationRecord } from '../common/invocations.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${message} (HTTP ${status})`);
    this.name = 'ApiError';
  }
}

export async function call(method: string, pathname: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const { url, apiKey } = clientInfo();
  let res: Response;
  try {
    res = await fetch(new URL(pathname, url), {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new CliError(`cannot reach the gateway at ${url}: ${(err as Error).cause ?? (err as Error).message}; is \`faasbox up\` running?`);
  }
  return res;
}

export async function json(res: Response): Promise<unknown> {
  const text = await res.text();
  const data = text ? (JSON.parse(text) as unknown) : null;
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, e?.code ?? 'HTTP_ERROR', e?.message ?? text);
  }
  return data;
}

/** "sha256:abcdef..." -> "abcdef012345": enough to tell versions apart. */
function shortVersion(v: string): string {
  return v.replace(/^sha256:/, '').slice(0, 12);
}

const HELP: Record<string, string> = {
  deploy: `Usage: faasbox deploy NAME (--code SRC | --file FILE | --dir DIR --entry FILE) [options]

  --code SRC          the source of a single-file function (nodejs20, ESM: export default async (event, context) => ...;
                      python3: def handler(event, context): ...)
  --file FILE         read the single-file source from FILE
  --dir DIR           package DIR as a tar.gz (needs --entry, the file inside DIR with the handler)
  --entry FILE        entry file inside the package
  --runtime R         nodejs20 (default) or python3
  --handler NAME      the handler's name (default: "default" for nodejs20, "handler" for python3)
  --memory MB         memory in MB (default 128)
  --cpu MILLICORES    CPU; derived from memory when absent
  --timeout MS        timeout in ms (default 30000)
  --env K=V           environment variable (repeatable)
  --concurrency N     at most N invocations at once (sync calls beyond it: 429; async ones wait); default unlimited
  --isolation MODE    reuse (default) or fresh
  --public            invocable without an API key
  --json              print the gateway's JSON answer`,
  invoke: `Usage: faasbox invoke NAME [--data JSON | --data-file FILE] [--async] [--json]

Prints the function's result; with --json the whole answer with invocation id and timings.`,
  logs: 'Usage: faasbox logs INVOCATION_ID [--json]',
  ls: 'Usage: faasbox ls [--json]',
  get: 'Usage: faasbox get NAME [--json] [--reveal-env] [--callback-secret]\n\nEnv values show as null unless --reveal-env.\n--callback-secret: the secret the function\'s callbacks are signed with (X-Faasbox-Signature), instead of the function; with --json, the secret and how it signs.',
  rm: 'Usage: faasbox rm NAME',
};

function wantsHelp(cmd: string, argv: string[]): boolean {
  if (argv.includes('-h') || argv.includes('--help')) {
    console.log(HELP[cmd]);
    return true;
  }
  return false;
}

export async function deploy(argv: string[]): Promise<number> {
  if (wantsHelp('deploy', argv)) return 0;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      code: { type: 'string' },
      file: { type: 'string' },
      dir: { type: 'string' },
      entry: { type: 'string' },
      runtime: { type: 'string', default: 'nodejs20' },
      handler: { type: 'string' },
      memory: { type: 'string' },
      cpu: { type: 'string' },
      timeout: { type: 'string' },
      env: { type: 'string', multiple: true },
      isolation: { type: 'string' },
      concurrency: { type: 'string' },
      public: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const name = positionals[0];
  if (!name) throw new CliError('deploy needs a function name; see faasbox deploy --help');
  const body: Record<string, unknown> = { runtime: values.runtime };
  const sources = [values.code, values.file, values.dir].filter((v) => v !== undefined).length;
  if (sources !== 1) throw new CliError('give exactly one of --code, --file or --dir');
  if (values.code !== undefined) body.code = values.code;
  if (values.file !== undefined) body.code = readFileSync(values.file, 'utf8');
  if (values.dir !== undefined) {
    if (!statSync(values.dir).isDirectory()) throw new CliError(`--dir ${values.dir} is not a directory`);
    if (!values.entry) throw new CliError('--dir needs --entry');
    body.package = execFileSync('tar', ['-czf', '-', '-C', path.resolve(values.dir), '.'], { maxBuffer: 64 * 1024 * 1024 }).toString('base64');
  }
  if (values.entry) body.entry = values.entry;
  if (values.handler) body.handler = values.handler;
  if (values.memory) body.memoryMb = parseNumber('--memory', values.memory, 'whole');
  if (values.cpu) body.cpu = parseNumber('--cpu', values.cpu, 'whole');
  if (values.timeout) body.timeoutMs = parseNumber('--timeout', values.timeout, 'whole');
  if (values.isolation) body.isolation = values.isolation;
  if (values.concurrency) body.concurrency = parseNumber('--concurrency', values.concurrency, 'whole');
  if (values.public) body.public = true;
  if (values.env) {
    body.env = Object.fromEntries(
      values.env.map((kv) => {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new CliError(`--env ${kv} is not KEY=VALUE`);
        return [kv.slice(0, eq), kv.slice(eq + 1)];
      }),
    );
  }
  const data = (await json(await call('PUT', `/v1/functions/${encodeURIComponent(name)}`, body))) as Record<string, unknown>;
  if (values.json) console.log(JSON.stringify(data));
  else console.log(`deployed ${name} version ${shortVersion(String((data.function as Record<string, unknown> | undefined)?.version ?? data.version ?? '?'))}`);
  return 0;
}

export async function invoke(argv: string[]): Promise<number> {
  if (wantsHelp('invoke', argv)) return 0;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { data: { type: 'string' }, 'data-file': { type: 'string' }, async: { type: 'boolean' }, json: { type: 'boolean' } },
  });
  const name = positionals[0];
  if (!name) throw new CliError('invoke needs a function name');
  const raw = values['data-file'] ? readFileSync(values['data-file'], 'utf8') : (values.data ?? '{}');
  let event: unknown;
  try {
    event = JSON.parse(raw);
  } catch (err) {
    throw new CliError(`--data is not valid JSON: ${(err as Error).message}`);
  }
  const res = await call('POST', `/v1/functions/${encodeURIComponent(name)}/invoke${values.async ? '?async=true' : ''}`, event);
  const text = await res.text();
  const id = res.headers.get('x-invocation-id');
  if (!res.ok && res.status !== 202) {
    let e: { code?: string; message?: string } = {};
    try {
      e = (JSON.parse(text) as { error: typeof e }).error ?? {};
    } catch {
      // not JSON: an HTTP-style function response with an error status
    }
    if (values.json) console.log(JSON.stringify({ status: res.status, invocationId: id, body: text }));
    else process.stderr.write(`faasbox: ${e.code ?? `HTTP ${res.status}`}: ${e.message ?? text}${id ? ` (invocation ${id}; faasbox logs ${id})` : ''}\n`);
    return 1;
  }
  if (values.json) {
    console.log(JSON.stringify({ status: res.status, invocationId: id, startKind: res.headers.get('x-cold-start'), serverTiming: res.headers.get('server-timing'), body: text }));
  } else {
    console.log(text);
    if (id) process.stderr.write(`invocation ${id} (${res.headers.get('x-cold-start') ?? 'queued'}) ${res.headers.get('server-timing') ?? ''}\n`);
  }
  return 0;
}

export async function logs(argv: string[]): Promise<number> {
  if (wantsHelp('logs', argv)) return 0;
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const id = positionals[0];
  if (!id) throw new CliError('logs needs an invocation id');
  const rec = (await json(await call('GET', `/v1/invocations/${encodeURIComponent(id)}`))) as Record<string, unknown>;
  if (values.json) {
    console.log(JSON.stringify(rec));
    return 0;
  }
  console.log(recordSummary(rec as unknown as InvocationRecord));
  // The function's own output, each on the stream it wrote to.
  if (rec.stdout) process.stdout.write(String(rec.stdout));
  if (rec.stderr) process.stderr.write(String(rec.stderr));
  return 0;
}

/** An invocation record for people: what ran, how it started, where the time went, what came of it. */
export function recordSummary(rec: InvocationRecord): string {
  const lines = [`${rec.id} ${rec.function} ${rec.status}${rec.startKind ? ` (${rec.startKind})` : ''}${rec.attempts > 1 ? `, ${rec.attempts} attempts` : ''}`];
  const t = rec.timings;
  if (t) lines.push(`time: queue ${ms(t.queueMs)}, init ${ms(t.initMs)}${t.thawMs !== undefined ? `, thaw ${ms(t.thawMs)}` : ''}, exec ${ms(t.execMs)}, total ${ms(t.totalMs)}`);
  if (rec.response) lines.push(`response: HTTP ${rec.response.status}, ${Buffer.from(rec.response.body, 'base64').length} bytes of body`);
  else if (rec.status === 'succeeded') lines.push(`result: ${JSON.stringify(rec.result ?? null)}`);
  if (rec.error) {
    lines.push(`error: ${rec.error.code}: ${rec.error.message}`);
    if (rec.error.stack) lines.push(rec.error.stack.replace(/^/gm, '  '));
  }
  if (rec.stdoutTruncated || rec.stderrTruncated) lines.push('output: truncated at the record\'s limit');
  return lines.join('\n');
}

function ms(v: number): string {
  return `${v < 10 ? Math.round(v * 100) / 100 : Math.round(v)} ms`;
}

export async function ls(argv: string[]): Promise<number> {
  if (wantsHelp('ls', argv)) return 0;
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
  const data = (await json(await call('GET', '/v1/functions'))) as { functions?: Record<string, unknown>[] } | Record<string, unknown>[];
  const list = Array.isArray(data) ? data : (data.functions ?? []);
  if (values.json) {
    console.log(JSON.stringify(list));
    return 0;
  }
  console.log(`${'NAME'.padEnd(24)} ${'RUNTIME'.padEnd(10)} ${'MEMORY'.padEnd(7)} VERSION`);
  for (const f of list) {
    const spec = (f.spec ?? f) as Record<string, unknown>;
    console.log(`${String(f.name).padEnd(24)} ${String(spec.runtime).padEnd(10)} ${String(spec.memoryMb).padEnd(7)} ${shortVersion(String(f.version))}`);
  }
  return 0;
}

export async function get(argv: string[]): Promise<number> {
  if (wantsHelp('get', argv)) return 0;
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, 'reveal-env': { type: 'boolean' }, 'callback-secret': { type: 'boolean' } } });
  if (!positionals[0]) throw new CliError('get needs a function name');
  if (values['callback-secret']) {
    const got = (await json(await call('GET', `/v1/functions/${encodeURIComponent(positionals[0])}/callback-secret`))) as { secret: string };
    console.log(values.json ? JSON.stringify(got, null, 2) : got.secret);
    return 0;
  }
  const query = values['reveal-env'] ? '?reveal=env' : '';
  console.log(JSON.stringify(await json(await call('GET', `/v1/functions/${encodeURIComponent(positionals[0])}${query}`)), null, 2));
  return 0;
}

export async function rm(argv: string[]): Promise<number> {
  if (wantsHelp('rm', argv)) return 0;
  const { positionals } = parseArgs({ args: argv, allowPositionals: true });
  if (!positionals[0]) throw new CliError('rm needs a function name');
  await json(await call('DELETE', `/v1/functions/${encodeURIComponent(positionals[0])}`));
  console.log(`deleted ${positionals[0]}`);
  return 0;
}

