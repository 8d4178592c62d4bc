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
 *   {p}:fn:{name}:records ZSET    the function's record ids by creation time (µs): its oldest
 *                                 records beyond StorageLimits.recordsPerFunction are deleted
 *
 * Status writes go through one script (advanceScript) under which a status only moves
 * forward, whatever order the writes of gateway and workers land in; updates without an
 * identity refuse a record that does not exist, so a late worker cannot resurrect an
 * expired record as a partial one.
 */
import type { Redis } from 'ioredis';
import type { ErrorInfo } from './errors.js';
import { DEFAULT_STORAGE_LIMITS } from './limits.js';
import { invocationKey, recordsIndexKey } from './keys.js';
import { RedisScript } from './redis-script.js';
import type { HttpResponseData, InvocationMode, InvocationResult, StartKind, Timings } from './queue.js';

/**
 * `retrying`: an async attempt failed and the next one is due at `nextAttemptAt` (it ranks
 * with `running`: running -> retrying -> running ... as attempts go). `dead-lettered`: an
 * async invocation's last attempt failed (or its event grew too old); `deadLetterId`
 * names its entry in the function's dead letters (common/delivery/dead-letters.ts).
 */
export type InvocationStatus = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'dead-lettered';
export const FINAL_STATUSES: readonly InvocationStatus[] = ['succeeded', 'failed', 'dead-lettered'];

export function isFinal(status: string | undefined): boolean {
  return (FINAL_STATUSES as readonly (string | undefined)[]).includes(status);
}
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
  /** What the invocation used, from its container's cgroup (CPU, peak memory, block I/O). */
  usage?: NonNullable<InvocationResult['usage']>;
  /** The handler's JSON value, when it succeeded with one. */
  result?: unknown;
  /** The handler's HTTP-style response, when it returned one. */
  response?: HttpResponseData;
  error?: ErrorInfo;
  attempts: number;
  /** status retrying: when the next attempt is due (ISO). */
  nextAttemptAt?: string;
  /** status dead-lettered: the entry's id in the function's dead letters. */
  deadLetterId?: string;
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

// Every write of a record's status goes through this one script, so that the order in
// which writes land cannot matter: the gateway's `queued` create travels on another
// connection than BullMQ's add, and the worker's `running` and final writes have been
// measured landing before it (26 of 2,000 async records ended `queued` with a result,
// 55 after a Redis reconnect). A status only moves forward: queued -> running -> final;
// running -> running is a new attempt, final -> final a later attempt's outcome. `attempts`
// only grows, to the attempt number BullMQ counted when it handed the job out, so two
// processes never read-modify-write it.
//
// A record that is created is indexed by its function (ZSET id -> creation time in µs, by
// Redis's clock: ms tied between records made in a row), and the function's oldest records beyond its limit are deleted with their output.
// The index key is derived from the prefix and the record's function, so (as the
// registry's) this needs a single Redis node.
//
// KEYS: 1 record hash.
// ARGV: 1 ttl seconds, 2 status, 3 attempt (0: not a start), 4 create when absent (1|0),
//       5 key prefix, 6 records kept per function, 7 number n of identity field/value
//       pairs (set only where absent), then those n pairs, then the pairs written with the
//       status.
// Returns 1 when the status was written, 0 when it would have gone back, -1 when the
// record does not exist and is not to be created.
const advanceScript = new RedisScript(
  'invocation-advance',
  `
local rank = {queued = 0, running = 1, retrying = 1, succeeded = 2, failed = 2, ['dead-lettered'] = 2}
local created = redis.call('EXISTS', KEYS[1]) == 0
if created and ARGV[4] ~= '1' then return -1 end
local n = tonumber(ARGV[7])
for i = 8, 7 + 2 * n, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
local attempt = tonumber(ARGV[3])
redis.call('HSETNX', KEYS[1], 'attempts', 0)
if attempt > tonumber(redis.call('HGET', KEYS[1], 'attempts')) then redis.call('HSET', KEYS[1], 'attempts', attempt) end
local current = redis.call('HGET', KEYS[1], 'status')
local want = rank[ARGV[2]]
local wrote = 0
if not current or want > rank[current] or (want == rank[current] and want > 0) then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 8 + 2 * n))
  wrote = 1
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if created then
  local id = redis.call('HGET', KEYS[1], 'id')
  local index = ARGV[5] .. ':fn:' .. redis.call('HGET', KEYS[1], 'function') .. ':records'
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('ZADD', index, now, id)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now - tonumber(ARGV[1]) * 1000000)
  local over = redis.call('ZCARD', index) - tonumber(ARGV[6])
  if over > 0 then
    local gone = redis.call('ZPOPMIN', index, over)
    for i = 1, #gone, 2 do
      local key = ARGV[5] .. ':inv:' .. gone[i]
      redis.call('DEL', key, key .. ':stdout', key .. ':stderr')
    end
  end
  redis.call('EXPIRE', index, ARGV[1])
end
return wrote
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
    /** Records kept per function (StorageLimits.recordsPerFunction). */
    readonly recordsPerFunction = DEFAULT_STORAGE_LIMITS.recordsPerFunction,
  ) {}

  private key(id: string) {
    return invocationKey(this.prefix, id);
  }

  /** The ids of a function's records, oldest first, as the per-function limit keeps them. */
  async idsOf(fn: string): Promise<string[]> {
    return this.redis.zrange(recordsIndexKey(this.prefix, fn), '0', '-1');
  }

  /** An async invocation was accepted: queued, unless a worker's write got there first. */
  async create(inv: NewInvocation): Promise<void> {
    await this.advance(inv.id, 'queued', {}, { inv });
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
    if (h.nextAttemptAt && rec.status === 'retrying') rec.nextAttemptAt = h.nextAttemptAt;
    if (h.deadLetterId) rec.deadLetterId = h.deadLetterId;
    if (h.startKind) rec.startKind = h.startKind as StartKind;
    const timings = json<Timings>('timings');
    if (timings) rec.timings = timings;
    const usage = json<NonNullable<InvocationResult['usage']>>('usage');
    if (usage) rec.usage = usage;
    if (h.result !== undefined) rec.result = json<unknown>('result');
    const response = json<HttpResponseData>('response');
    if (response) rec.response = response;
    const error = json<ErrorInfo>('error');
    if (error) rec.error = error;
    return rec;
  }

  /**
   * Move the record to `status` with `fields`, never back (see advanceScript). With `inv`
   * the record is made when missing; without, a missing one stays missing (a late worker
   * does not resurrect an expired record as a partial one).
   */
  private async advance(
    id: string,
    status: InvocationStatus,
    fields: Record<string, string | number>,
    opts: { inv?: NewInvocation; attempt?: number },
  ): Promise<'written' | 'refused' | 'missing'> {
    const ident = opts.inv ? Object.entries(identity(opts.inv)).flat() : [];
    const reply = await advanceScript.run(
      this.redis,
      [this.key(id)],
      [
        this.ttlSeconds,
        status,
        opts.attempt ?? 0,
        opts.inv ? 1 : 0,
        this.prefix,
        this.recordsPerFunction,
        ident.length / 2,
        ...ident,
        ...Object.entries(fields).flatMap(([k, v]) => [k, String(v)]),
      ],
    );
    return reply === 1 ? 'written' : reply === 0 ? 'refused' : 'missing';
  }

  /**
   * A worker took the job: the record is running, made now if the gateway made none (sync).
   * `attempt` is BullMQ's count of the times the job was handed to a worker.
   */
  async start(inv: NewInvocation, attempt = 1, startedAt = new Date()): Promise<void> {
    await this.advance(inv.id, 'running', { startedAt: startedAt.toISOString() }, { inv, attempt });
  }

  /**
   * Record the final outcome, exactly as the worker returns it to the queue. False when the
   * record does not exist (expired, or trimmed by the per-function limit).
   */
  async complete(id: string, result: InvocationResult, finishedAt = new Date()): Promise<boolean> {
    const fields: Record<string, string> = {
      finishedAt: finishedAt.toISOString(),
      startKind: result.startKind,
      timings: JSON.stringify(result.timings),
    };
    if (result.usage) fields.usage = JSON.stringify(result.usage);
    if (result.ok && result.http) fields.response = JSON.stringify(result.http);
    else if (result.ok) fields.result = JSON.stringify(result.value ?? null);
    // A success after failed attempts (status retrying) must not keep showing their error.
    fields.error = JSON.stringify(result.error ?? null);
    return (await this.advance(id, result.ok ? 'succeeded' : 'failed', fields, {})) !== 'missing';
  }

  /** An async attempt failed and another is due at `nextAt`: its error shows meanwhile. */
  async retrying(id: string, result: InvocationResult, nextAt: Date): Promise<boolean> {
    const fields: Record<string, string> = { nextAttemptAt: nextAt.toISOString(), startKind: result.startKind, timings: JSON.stringify(result.timings) };
    if (result.error) fields.error = JSON.stringify(result.error);
    return (await this.advance(id, 'retrying', fields, {})) !== 'missing';
  }

  /** An async invocation's last attempt failed: final, its entry in the dead letters named. */
  async deadLettered(id: string, result: InvocationResult, deadLetterId: string, finishedAt = new Date()): Promise<boolean> {
    const fields: Record<string, string> = {
      finishedAt: finishedAt.toISOString(),
      startKind: result.startKind,
      timings: JSON.stringify(result.timings),
      deadLetterId,
    };
    if (result.error) fields.error = JSON.stringify(result.error);
    return (await this.advance(id, 'dead-lettered', fields, {})) !== 'missing';
  }

  /** Failed without a worker result (the gateway withdrew the job: NO_CAPACITY); made if missing. */
  async fail(inv: NewInvocation, error: ErrorInfo, finishedAt = new Date()): Promise<void> {
    await this.advance(inv.id, 'failed', { finishedAt: finishedAt.toISOString(), error: JSON.stringify(error) }, { inv });
  }

  /** Delete a record and its output: an invocation that was not accepted after all. */
  async discard(id: string): Promise<void> {
    const key = this.key(id);
    await this.redis.del(key, `${key}:stdout`, `${key}:stderr`);
  }

  /** Append function output, keeping at most OUTPUT_LIMIT_BYTES per stream. Returns bytes kept. */
  async appendOutput(id: string, stream: OutputStream, chunk: Buffer | string, limitBytes = OUTPUT_LIMIT_BYTES): Promise<number> {
    const key = this.key(id);
    return (await appendScript.run(this.redis, [`${key}:${stream}`, key], [chunk, limitBytes, this.ttlSeconds, `${stream}Truncated`])) as number;
  }
}

export { recordsIndexKey } from './keys.js';

function identity(inv: NewInvocation): Record<string, string> {
  return { id: inv.id, function: inv.function, version: inv.version, mode: inv.mode, createdAt: (inv.createdAt ?? new Date()).toISOString() };
}
