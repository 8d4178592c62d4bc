/**
 * Invocation records: what GET /v1/invocations/:id shows, for sync and async invocations
 * alike. For an async invocation the gateway creates the record (queued) before it
 * enqueues the job, so the id it answers with can be looked up at once. A sync caller
 * waits for the reply itself, so the gateway writes nothing: the worker makes the record
 * when it takes the job (start(), for both modes), streams output into it and completes
 * it. Records expire (TTL).
 *
 * Keys, under the deployment prefix:
 *   {p}:inv:{id}          HASH    one field per attribute (JSON-encoded where structured),
 *                                 so writers update fields without read-modify-write
 *   {p}:inv:{id}:stdout   STRING  appended, capped at OUTPUT_LIMIT_BYTES
 *   {p}:inv:{id}:stderr   STRING  same
 *
 * Updates go through a script that refuses to touch a record that does not exist, so a late
 * worker cannot resurrect an expired record as a partial one.
 */
import type { Redis } from 'ioredis';
import type { ErrorInfo } from './errors.js';
import { RedisScript } from './redis-script.js';
import type { HttpResponseData, InvocationMode, InvocationResult, StartKind, Timings } from './queue.js';

export type InvocationStatus = 'queued' | 'running' | 'succeeded' | 'failed';
export type OutputStream = 'stdout' | 'stderr';

export const OUTPUT_LIMIT_BYTES = 64 * 1024;
export const DEFAULT_RECORD_TTL_S = 24 * 3600;

export interface InvocationRecord {
  id: string;
  function: string;
  version: string;
  mode: InvocationMode;
  status: InvocationStatus;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  startKind?: StartKind;
  timings?: Timings;
  /** The handler's JSON value, when it succeeded with one. */
  result?: unknown;
  /** The handler's HTTP-style response, when it returned one. */
  response?: HttpResponseData;
  error?: ErrorInfo;
  attempts: number;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export interface NewInvocation {
  id: string;
  function: string;
  version: string;
  mode: InvocationMode;
  createdAt?: Date;
}

// KEYS: 1 record hash. ARGV: 1 ttl seconds, then field/value pairs.
// Returns 1 when updated, 0 when the record does not exist.
const updateScript = new RedisScript(
  'invocation-update',
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
`,
);

// KEYS: 1 record hash. ARGV: 1 ttl seconds, then field/value pairs. Creates or updates.
const upsertScript = new RedisScript(
  'invocation-upsert',
  `
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
`,
);

// KEYS: 1 output string, 2 record hash. ARGV: 1 chunk, 2 cap bytes, 3 ttl seconds,
// 4 name of the truncated flag field.
// Returns the bytes kept from the chunk, -1 when the record does not exist.
const appendScript = new RedisScript(
  'invocation-append-output',
  `
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local cap = tonumber(ARGV[2])
local room = cap - redis.call('STRLEN', KEYS[1])
local chunk = ARGV[1]
if #chunk > room then
  redis.call('HSET', KEYS[2], ARGV[4], '1')
  if room <= 0 then return 0 end
  chunk = string.sub(chunk, 1, room)
end
redis.call('APPEND', KEYS[1], chunk)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return #chunk
`,
);

export class InvocationStore {
  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    readonly ttlSeconds = DEFAULT_RECORD_TTL_S,
  ) {}

  private key(id: string) {
    return `${this.prefix}:inv:${id}`;
  }

  async create(inv: NewInvocation): Promise<void> {
    await this.upsert(inv, { status: 'queued', attempts: 0 });
  }

  async get(id: string): Promise<InvocationRecord | undefined> {
    const key = this.key(id);
    const replies = (await this.redis.pipeline().hgetall(key).get(`${key}:stdout`).get(`${key}:stderr`).exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    const h = (replies[0]?.[1] ?? {}) as Record<string, string>;
    if (!h.id) return undefined;
    const json = <T>(field: string): T | undefined => (h[field] === undefined ? undefined : (JSON.parse(h[field]) as T));
    const rec: InvocationRecord = {
      id: h.id,
      function: h.function as string,
      version: h.version as string,
      mode: h.mode as InvocationMode,
      status: h.status as InvocationStatus,
      createdAt: h.createdAt as string,
      attempts: Number(h.attempts ?? 0),
      stdout: (replies[1]?.[1] as string | null) ?? '',
      stderr: (replies[2]?.[1] as string | null) ?? '',
      stdoutTruncated: h.stdoutTruncated === '1',
      stderrTruncated: h.stderrTruncated === '1',
    };
    if (h.startedAt) rec.startedAt = h.startedAt;
    if (h.finishedAt) rec.finishedAt = h.finishedAt;
    if (h.startKind) rec.startKind = h.startKind as StartKind;
    const timings = json<Timings>('timings');
    if (timings) rec.timings = timings;
    if (h.result !== undefined) rec.result = json<unknown>('result');
    const response = json<HttpResponseData>('response');
    if (response) rec.response = response;
    const error = json<ErrorInfo>('error');
    if (error) rec.error = error;
    return rec;
  }

  /** Set fields of an existing record; false when it does not exist (expired or never made). */
  async update(id: string, fields: Record<string, string | number>): Promise<boolean> {
    const flat = Object.entries(fields).flatMap(([k, v]) => [k, String(v)]);
    if (flat.length === 0) return true;
    return (await updateScript.run(this.redis, [this.key(id)], [this.ttlSeconds, ...flat])) === 1;
  }

  private async upsert(inv: NewInvocation, fields: Record<string, string | number>): Promise<void> {
    const all = { ...identity(inv), ...fields };
    await upsertScript.run(this.redis, [this.key(inv.id)], [this.ttlSeconds, ...Object.entries(all).flatMap(([k, v]) => [k, String(v)])]);
  }

  /** A worker took the job: the record is running, made now if the gateway made none (sync). */
  async start(inv: NewInvocation, attempt = 1, startedAt = new Date()): Promise<void> {
    await this.upsert(inv, { status: 'running', startedAt: startedAt.toISOString(), attempts: attempt });
  }

  /** Record the final outcome, exactly as the worker returns it to the queue. */
  async complete(id: string, result: InvocationResult, finishedAt = new Date()): Promise<boolean> {
    const fields: Record<string, string> = {
      status: result.ok ? 'succeeded' : 'failed',
      finishedAt: finishedAt.toISOString(),
      startKind: result.startKind,
      timings: JSON.stringify(result.timings),
    };
    if (result.ok && result.http) fields.response = JSON.stringify(result.http);
    else if (result.ok) fields.result = JSON.stringify(result.value ?? null);
    if (result.error) fields.error = JSON.stringify(result.error);
    return this.update(id, fields);
  }

  /** Failed without a worker result (the gateway withdrew the job: NO_CAPACITY); made if missing. */
  async fail(inv: NewInvocation, error: ErrorInfo, finishedAt = new Date()): Promise<void> {
    await this.upsert(inv, { status: 'failed', finishedAt: finishedAt.toISOString(), error: JSON.stringify(error) });
  }

  /** Append function output, keeping at most OUTPUT_LIMIT_BYTES per stream. Returns bytes kept. */
  async appendOutput(id: string, stream: OutputStream, chunk: Buffer | string, limitBytes = OUTPUT_LIMIT_BYTES): Promise<number> {
    const key = this.key(id);
    return (await appendScript.run(this.redis, [`${key}:${stream}`, key], [chunk, limitBytes, this.ttlSeconds, `${stream}Truncated`])) as number;
  }
}

function identity(inv: NewInvocation): Record<string, string> {
  return { id: inv.id, function: inv.function, version: inv.version, mode: inv.mode, createdAt: (inv.createdAt ?? new Date()).toISOString() };
}
