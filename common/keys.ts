/**
 * Every key string the services share, built by one function each: the identities
 * (`name@version`, a runtime shape) and the Redis keys, all under the deployment's
 * prefix. A Lua script that derives a key itself (registry.ts, invocations.ts) names the
 * builder it mirrors beside it.
 *
 * Redis keys (p = prefix):
 *   {p}:functions                 SET     function names                    (registry)
 *   {p}:fn:{name}                 HASH    latest version and spec           (registry)
 *   {p}:fn:{name}:versions        ZSET    version -> first deploy time      (registry)
 *   {p}:fn:{name}:records         ZSET    the function's invocation records (invocations)
 *   {p}:fn:{name}:queued          HASH    bytes waiting per invocation      (queued-bytes)
 *   {p}:fn:{name}:queued-until    ZSET    when each queued body lapses      (queued-bytes)
 *   {p}:ver:{name}:{version}      STRING  JSON FunctionVersion              (registry)
 *   {p}:code:{digest}             STRING  code bytes                        (registry)
 *   {p}:coderefs:{digest}         SET     functions using the blob          (registry)
 *   {p}:inv:{id}                  HASH    invocation record (+ :stdout/:stderr)
 *   {p}:concurrency:{name}        ZSET    a function's held slots           (concurrency)
 *   {p}:workers                   HASH    workerId -> report                (placement)
 *   {p}:worker-demand             HASH    workerId -> demand report         (sizing)
 *   {p}:pool-targets              HASH    workerId -> pool targets          (sizing)
 *   {p}:orphan-queues             SET     worker queues to hand over        (queue-handover)
 *   {p}:function-events           channel deploys and deletes               (registry)
 */

/** A function version's identity: `name@version` (names cannot hold '@': function-spec.ts). */
export function versionKey(name: string, version: string): string {
  return `${name}@${version}`;
}

/** What every version key of a function starts with. */
export function versionKeyPrefix(name: string): string {
  return `${name}@`;
}

/**
 * A container's shape, which a stem cell must match to be specialised: `runtime/memoryMb`,
 * and `runtime/memoryMb/bridge` for a stem cell made with its bridge network (none is the default).
 */
export function shapeKey(runtime: string, memoryMb: number, network: 'none' | 'bridge' = 'none'): string {
  return network === 'bridge' ? `${runtime}/${memoryMb}/bridge` : `${runtime}/${memoryMb}`;
}

export function functionsKey(prefix: string): string {
  return `${prefix}:functions`;
}

export function functionKey(prefix: string, name: string): string {
  return `${prefix}:fn:${name}`;
}

export function functionVersionsKey(prefix: string, name: string): string {
  return `${functionKey(prefix, name)}:versions`;
}

/** The function's records index; invocations.ts's advanceScript builds the same key in Lua. */
export function recordsIndexKey(prefix: string, name: string): string {
  return `${functionKey(prefix, name)}:records`;
}

/** The function's queued bytes and their lapse times (queued-bytes.ts). */
export function queuedBytesKeys(prefix: string, name: string): [bytes: string, until: string] {
  return [`${functionKey(prefix, name)}:queued`, `${functionKey(prefix, name)}:queued-until`];
}

/** A version record; registry.ts's delete script builds the same key in Lua. */
export function versionRecordKey(prefix: string, name: string, version: string): string {
  return `${prefix}:ver:${name}:${version}`;
}

export function codeKey(prefix: string, digest: string): string {
  return `${prefix}:code:${digest}`;
}

export function codeRefsKey(prefix: string, digest: string): string {
  return `${prefix}:coderefs:${digest}`;
}

/** An invocation's record; its output streams are this plus `:stdout` / `:stderr`. */
export function invocationKey(prefix: string, id: string): string {
  return `${prefix}:inv:${id}`;
}

export function concurrencyKey(prefix: string, name: string): string {
  return `${prefix}:concurrency:${name}`;
}

/** Hash: workerId -> JSON WorkerReport (placement). */
export function workersKey(prefix: string): string {
  return `${prefix}:workers`;
}

/** Hash: workerId -> JSON DemandReport (written by each worker). */
export function demandKey(prefix: string): string {
  return `${prefix}:worker-demand`;
}

/** Hash: workerId -> JSON PoolTargets (written by the scheduler). */
export function poolTargetsKey(prefix: string): string {
  return `${prefix}:pool-targets`;
}

/** The set of worker queues to hand over (a restarted scheduler carries on from it). */
export function orphanQueuesKey(prefix: string): string {
  return `${prefix}:orphan-queues`;
}

/** Pub/sub channel (after the prefix) on which deploys and deletes are announced. */
export const FUNCTION_EVENTS_CHANNEL = 'function-events';

export function functionEventsChannel(prefix: string): string {
  return `${prefix}:${FUNCTION_EVENTS_CHANNEL}`;
}
