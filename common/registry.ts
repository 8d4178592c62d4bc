/**
 * The function registry, in Redis.
 *
 * Every deploy creates (or finds) an immutable version whose id is the digest of the spec,
 * and the spec names its code by the code's own digest: so the id covers code and config,
 * and an identical re-deploy lands on the same version. Code blobs are stored once per
 * digest and reference-counted by function name, because two functions may share code.
 *
 * Keys, under a prefix (one prefix per deployment; tests use one per test):
 *   {p}:functions                 SET     names
 *   {p}:fn:{name}                 HASH    version (latest), spec (JSON of latest), createdAt, updatedAt
 *   {p}:fn:{name}:versions        ZSET    version -> first deploy time (ms)
 *   {p}:ver:{name}:{version}      STRING  JSON FunctionVersion, written once (SET NX)
 *   {p}:code:{digest}             STRING  code bytes
 *   {p}:coderefs:{digest}         SET     names of functions whose versions use the blob
 *
 * Env values never reach Redis in clear: both stored copies of a spec (the fn hash's and the
 * version record's) hold `envSealed` instead of `env` (sealed-spec.ts), sealed and opened
 * here and nowhere else, so every service that reads specs needs the same key.
 *
 * Deploys and deletes are single Lua scripts: atomic against each other, so a delete of one
 * function cannot free a blob that a concurrent deploy of another is starting to use. The
 * delete script derives keys from the prefix, so the registry needs a single Redis node
 * (not Cluster), which is also what BullMQ's own multi-key scripts prefer.
 */
import type { Redis } from 'ioredis';
import { FunctionNotFoundError, InternalError, VersionNotFoundError } from './errors.js';
import { versionOf, type FunctionSpec } from './function-spec.js';
import { codeKey, codeRefsKey, functionEventsChannel, functionKey, functionsKey, functionVersionsKey, versionRecordKey } from './keys.js';
import { DEFAULT_STORAGE_LIMITS } from './limits.js';
import { RedisScript } from './redis-script.js';
import { openSpec, sealSpec, versionedSpec, type StoredSpec } from './sealed-spec.js';
import type { SecretBox } from './secrets.js';

export { FUNCTION_EVENTS_CHANNEL, functionEventsChannel } from './keys.js';

/**
 * What workers hear on the channel. On 'deleted' they drop every warm container of the
 * function; on 'deployed' they may drop containers of `previous` and prewarm `version`.
 */
export type FunctionEvent =
  | { type: 'deployed'; name: string; version: string; previous: string | null }
  | { type: 'deleted'; name: string; versions: string[] };

/** A message on the registry's events channel, or undefined when it is not an event of ours. */
export function parseFunctionEvent(message: string): FunctionEvent | undefined {
  try {
    return JSON.parse(message) as FunctionEvent;
  } catch {
    return undefined;
  }
}

export interface FunctionVersion {
  name: string;
  version: string;
  spec: FunctionSpec;
  createdAt: string;
}

export interface FunctionRecord {
  name: string;
  /** The latest version, the one invocations run. */
  version: string;
  spec: FunctionSpec;
  createdAt: string;
  updatedAt: string;
}

export interface PutResult {
  function: FunctionRecord;
  /** True when no function of this name existed before. */
  createdFunction: boolean;
  /** True when this content had never been deployed under this name. */
  createdVersion: boolean;
  previousVersion: string | null;
  /** The oldest versions this deploy deleted, being beyond the versions kept per function. */
  prunedVersions: string[];
}

// KEYS: 1 fn hash, 2 versions zset, 3 version record, 4 code blob, 5 code refs, 6 functions set
// ARGV: 1 name, 2 version, 3 version JSON, 4 spec JSON, 5 now ms, 6 code bytes, 7 channel,
//       8 now ISO, 9 versions kept, 10 prefix
// Returns {createdVersion 0|1, previous version or false, createdAt ISO of the function,
//          updatedAt ISO, pruned versions}
//
// Beyond the versions kept, the oldest versions (by first deploy) other than the current one
// and the one it replaces (its invocations may still be queued or running) are deleted
// (each can hold 10 MiB of code, and nothing else ever removed one), with their code blob
// when no version of the function still uses it and no other function refers to it.
const putScript = new RedisScript(
  'registry-put',
  `
local createdVersion = redis.call('SET', KEYS[3], ARGV[3], 'NX') and 1 or 0
redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[2])
if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SET', KEYS[4], ARGV[6]) end
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
local previous = redis.call('HGET', KEYS[1], 'version')
redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[8])
if previous ~= ARGV[2] then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'spec', ARGV[4], 'updatedAt', ARGV[8])
  redis.call('PUBLISH', ARGV[7], cjson.encode({type = 'deployed', name = ARGV[1], version = ARGV[2],
    previous = previous or cjson.null}))
end
local pruned = {}
local count, keep = redis.call('ZCARD', KEYS[2]), tonumber(ARGV[9])
if count > keep then
  local p, name = ARGV[10], ARGV[1]
  local digestOf = function(v)
    local rec = redis.call('GET', p .. ':ver:' .. name .. ':' .. v)
    return rec and cjson.decode(rec).spec.code.digest
  end
  for _, v in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if count <= keep then break end
    if v ~= ARGV[2] and v ~= previous then
      local digest = digestOf(v)
      redis.call('DEL', p .. ':ver:' .. name .. ':' .. v)
      redis.call('ZREM', KEYS[2], v)
      count = count - 1
      pruned[#pruned + 1] = v
      local used = false
      for _, other in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
        if digestOf(other) == digest then used = true break end
      end
      if digest and not used then
        local refs = p .. ':coderefs:' .. digest
        redis.call('SREM', refs, name)
        if redis.call('SCARD', refs) == 0 then redis.call('DEL', p .. ':code:' .. digest, refs) end
      end
    end
  end
end
return {createdVersion, previous, redis.call('HGET', KEYS[1], 'createdAt'), redis.call('HGET', KEYS[1], 'updatedAt'), pruned}
`,
);

// KEYS: 1 fn hash, 2 versions zset, 3 functions set
// ARGV: 1 prefix, 2 name, 3 channel
// Returns the deleted versions, or false when the function did not exist.
const deleteScript = new RedisScript(
  'registry-delete',
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local p, name = ARGV[1], ARGV[2]
local versions = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, v in ipairs(versions) do
  local key = p .. ':ver:' .. name .. ':' .. v
  local rec = redis.call('GET', key)
  if rec then
    local digest = cjson.decode(rec).spec.code.digest
    local refs = p .. ':coderefs:' .. digest
    redis.call('SREM', refs, name)
    if redis.call('SCARD', refs) == 0 then
      redis.call('DEL', p .. ':code:' .. digest, refs)
    end
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], name)
redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'deleted', name = name, versions = versions}))
return versions
`,
);

export class FunctionRegistry {
  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    /** Seals env values; without it, only functions without env can be deployed or read. */
    private readonly secrets?: SecretBox,
    /** Versions kept per function (StorageLimits.versionsPerFunction). */
    readonly versionsKept = DEFAULT_STORAGE_LIMITS.versionsPerFunction,
  ) {}

  get eventsChannel(): string {
    return functionEventsChannel(this.prefix);
  }

  private fnKey(name: string) {
    return functionKey(this.prefix, name);
  }
  private versionsKey(name: string) {
    return functionVersionsKey(this.prefix, name);
  }
  private versionKey(name: string, version: string) {
    return versionRecordKey(this.prefix, name, version);
  }
  private codeKey(digest: string) {
    return codeKey(this.prefix, digest);
  }
  private get functionsKey() {
    return functionsKey(this.prefix);
  }

  /** Deploy: store the code and the version (if new) and point the function at it. */
  async put(spec: FunctionSpec, code: Buffer): Promise<PutResult> {
    this.invalidate(spec.name);
    const version = versionOf(versionedSpec(this.secrets, spec));
    const now = new Date();
    const sealed = sealSpec(this.secrets, spec);
    const record = { name: spec.name, version, spec: sealed, createdAt: now.toISOString() };
    const reply = (await putScript.run(
      this.redis,
      [
        this.fnKey(spec.name),
        this.versionsKey(spec.name),
        this.versionKey(spec.name, version),
        this.codeKey(spec.code.digest),
        codeRefsKey(this.prefix, spec.code.digest),
        this.functionsKey,
      ],
      [spec.name, version, JSON.stringify(record), JSON.stringify(sealed), now.getTime(), code, this.eventsChannel, now.toISOString(), this.versionsKept, this.prefix],
    )) as [number, string | null, string, string, string[]];
    const [createdVersion, previous, createdAt, updatedAt, prunedVersions] = reply;
    const fn: FunctionRecord = { name: spec.name, version, spec, createdAt, updatedAt };
    // The first invocation after a deploy (usually soon, from the same client) finds it in memory.
    if (this.cacheTtlMs > 0) this.cache.set(spec.name, { record: fn, at: Date.now() });
    return {
      function: fn,
      createdFunction: previous === null,
      createdVersion: createdVersion === 1,
      previousVersion: previous ?? null,
      prunedVersions,
    };
  }

  /** find() answers from memory for this long (0: no cache). See cacheFinds(). */
  private cacheTtlMs = 0;
  private readonly cache = new Map<string, { record: FunctionRecord | undefined; at: number }>();

  /**
   * Lets find() answer from memory for ttlMs: the invoke path then costs no Redis round
   * trip for the function record. This registry's own put/delete invalidate at once;
   * another process's deploys arrive through the events channel (invalidate(), wired by
   * the caller), with the TTL as the bound if a message is missed.
   */
  cacheFinds(ttlMs: number): void {
    this.cacheTtlMs = ttlMs;
  }

  /**
   * Forgets the cached record, unless it is already the one an event announces (a deploy
   * through this registry primes the cache, and its own event must not undo that).
   */
  invalidate(name: string, version?: string): void {
    if (version !== undefined && this.cache.get(name)?.record?.version === version) return;
    this.cache.delete(name);
  }

  async find(name: string): Promise<FunctionRecord | undefined> {
    if (this.cacheTtlMs > 0) {
      const hit = this.cache.get(name);
      if (hit && Date.now() - hit.at < this.cacheTtlMs) return hit.record;
    }
    const h = await this.redis.hgetall(this.fnKey(name));
    const record = h.version ? toRecord(name, h, this.secrets) : undefined;
    if (this.cacheTtlMs > 0) this.cache.set(name, { record, at: Date.now() });
    return record;
  }

  /** The current version alone: needs no secret key (triggers resolve versions with it). */
  async currentVersion(name: string): Promise<string | undefined> {
    return (await this.redis.hget(this.fnKey(name), 'version')) ?? undefined;
  }

  async get(name: string): Promise<FunctionRecord> {
    const fn = await this.find(name);
    if (!fn) throw new FunctionNotFoundError(name);
    return fn;
  }

  async list(): Promise<FunctionRecord[]> {
    const names = (await this.redis.smembers(this.functionsKey)).sort();
    if (names.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const name of names) pipe.hgetall(this.fnKey(name));
    const replies = (await pipe.exec()) ?? [];
    const out: FunctionRecord[] = [];
    names.forEach((name, i) => {
      const [err, h] = replies[i] ?? [];
      if (err) throw err;
      // A delete may land between SMEMBERS and HGETALL; such a name is simply gone.
      if (h && (h as Record<string, string>).version) out.push(toRecord(name, h as Record<string, string>, this.secrets));
    });
    return out;
  }

  /** Versions of a function, oldest first. */
  async listVersions(name: string): Promise<{ version: string; createdAt: string }[]> {
    const flat = await this.redis.zrange(this.versionsKey(name), '0', '-1', 'WITHSCORES');
    if (flat.length === 0) throw new FunctionNotFoundError(name);
    const out: { version: string; createdAt: string }[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      out.push({ version: flat[i] as string, createdAt: new Date(Number(flat[i + 1])).toISOString() });
    }
    return out;
  }

  /** An exact version; immutable, so callers may cache it forever. */
  async getVersion(name: string, version: string): Promise<FunctionVersion> {
    const raw = await this.redis.get(this.versionKey(name, version));
    if (raw === null) throw new VersionNotFoundError(name, version);
    const stored = JSON.parse(raw) as Omit<FunctionVersion, 'spec'> & { spec: StoredSpec };
    return { ...stored, spec: openSpec(this.secrets, stored.spec) };
  }

  /**
   * A version's `async` settings alone, its env left sealed: needs no secret key (the
   * scheduler's triggers and destinations accept invocations with it, common/delivery/accept.ts).
   */
  async asyncSettingsOf(name: string, version: string): Promise<FunctionSpec['async']> {
    const raw = await this.redis.get(this.versionKey(name, version));
    if (raw === null) throw new VersionNotFoundError(name, version);
    return (JSON.parse(raw) as { spec: StoredSpec }).spec.async;
  }

  /** Whether any function still uses the code (its blob goes with the last one: delete). */
  async hasCode(digest: string): Promise<boolean> {
    return (await this.redis.exists(this.codeKey(digest))) === 1;
  }

  async getCode(digest: string): Promise<Buffer> {
    const code = await this.redis.getBuffer(this.codeKey(digest));
    if (code === null) throw new InternalError(`code blob ${digest} is missing from the registry`);
    return code;
  }

  /** Delete a function, all its versions and any code no other function uses; announce it. */
  async delete(name: string): Promise<{ versions: string[] }> {
    this.invalidate(name);
    const reply = await deleteScript.run(
      this.redis,
      [this.fnKey(name), this.versionsKey(name), this.functionsKey],
      [this.prefix, name, this.eventsChannel],
    );
    if (reply === null) throw new FunctionNotFoundError(name);
    return { versions: reply as string[] };
  }
}

function toRecord(name: string, h: Record<string, string>, secrets: SecretBox | undefined): FunctionRecord {
  return {
    name,
    version: h.version as string,
    spec: openSpec(secrets, JSON.parse(h.spec as string) as StoredSpec),
    createdAt: h.createdAt as string,
    updatedAt: h.updatedAt as string,
  };
}
