/**
 * specconv: a function version (its FunctionSpec) becomes its container's limits here,
 * and nowhere else; every default a function gets lives here or in common/function-spec.ts's
 * LIMITS (the engine's own defaults, for `faasbox ctr run`, are taken from the same LIMITS).
 * A cold boot, a stem cell and a specialisation all take their limits from these
 * functions; the engine turns them into cgroup values once (engine/limits.ts).
 */
import { LIMITS, loadTimeoutMs, type FunctionSpec } from '../../common/function-spec.js';
import { versionKey } from '../../common/keys.js';
import type { FunctionVersion } from '../../common/registry.js';
import type { IoLimits, ResourceLimits } from '../engine/spec.js';
import { isolationOptions } from './isolation.js';
import { containerNetwork } from './network.js';
import type { FunctionTarget } from '../pool/pool.js';

const MiB = 1024 * 1024;

/** What a container is given, in the units a function is deployed with. */
export interface FunctionLimits {
  memoryMb: number;
  /** CPU quota in cores. */
  cpus: number;
  /** CFS burst in cores (at most cpus); 0: none. */
  cpuBurst: number;
  pids: number;
  diskMb: number;
  /** Block I/O limits (cgroup io.max / blkio.throttle), in place before the function's code runs; absent: none. */
  io?: IoLimits;
}

/** The engine's form: ResourceLimits plus the disk quota (rootfs.diskBytes) and block I/O ({} lifts earlier limits). */
export type ContainerLimits = ResourceLimits & { diskBytes: number; io?: IoLimits };

/**
 * A function's limits. Its CPU quota comes with a CFS burst of the same size: a function
 * idle between invocations (the usual case) saves up unused quota and spends it on the
 * next short invocation instead of being throttled halfway through it (with 128 MB's 0.072
 * cores, a 7.2 ms slice per 100 ms period, a module import plus a first call is enough to
 * hit the throttle), while its average stays within the quota.
 */
export function functionLimits(spec: Pick<FunctionSpec, 'memoryMb' | 'cpu' | 'pidsLimit' | 'diskMb' | 'io' | 'userns'>): FunctionLimits {
  const cpus = spec.cpu / 1000;
  const { io } = isolationOptions(spec);
  return {
    ...(io ? { io } : {}),
    memoryMb: spec.memoryMb,
    cpus,
    cpuBurst: cpus,
    pids: spec.pidsLimit ?? LIMITS.pidsLimit.default,
    diskMb: spec.diskMb ?? LIMITS.diskMb.default,
  };
}

/**
 * A stem cell's limits while it boots and waits: the memory of its shape (stems are pooled
 * by memory size), `bootCpus` so its runtime boots fast, no burst, and the default pids
 * and disk, which specialisation changes for a function that deployed others.
 */
export function stemLimits(memoryMb: number, bootCpus: number): FunctionLimits {
  return { memoryMb, cpus: bootCpus, cpuBurst: 0, pids: LIMITS.pidsLimit.default, diskMb: LIMITS.diskMb.default };
}

export function containerLimits(l: FunctionLimits): ContainerLimits {
  return { memoryBytes: l.memoryMb * MiB, cpus: l.cpus, ...(l.cpuBurst > 0 ? { cpuBurst: l.cpuBurst } : {}), pids: l.pids, diskBytes: l.diskMb * MiB, ...(l.io ? { io: l.io } : {}) };
}

/**
 * What changes when a container booted with `from` serves a function of `to`: `before`
 * must be written before the function's code runs (memory, pids, disk); `cpu` may follow
 * its load request (see Pool's specialise). Undefined when nothing of that kind changes.
 */
export function limitsChange(from: FunctionLimits, to: FunctionLimits): { before?: Partial<ContainerLimits>; cpu?: Partial<ContainerLimits> } {
  const before: Partial<ContainerLimits> = {};
  if (from.memoryMb !== to.memoryMb) before.memoryBytes = to.memoryMb * MiB;
  if (from.pids !== to.pids) before.pids = to.pids;
  if (from.diskMb !== to.diskMb) before.diskBytes = to.diskMb * MiB;
  // Block I/O, like memory, is in place before the function's module is read; a container
  // that had limits and serves a function without any has them lifted ({}).
  if (to.io) before.io = to.io;
  else if (from.io) before.io = {};
  const cpu: Partial<ContainerLimits> = from.cpus !== to.cpus || from.cpuBurst !== to.cpuBurst ? { cpus: to.cpus, cpuBurst: to.cpuBurst } : {};
  return { ...(Object.keys(before).length ? { before } : {}), ...(Object.keys(cpu).length ? { cpu } : {}) };
}

/** What the pool needs to know of a function version to give it a container. */
export function functionTarget(v: FunctionVersion, codeDir: string): FunctionTarget {
  const spec = v.spec;
  const limits = functionLimits(spec);
  return {
    key: versionKey(v.name, v.version),
    name: spec.name,
    runtime: spec.runtime,
    memoryMb: limits.memoryMb,
    limits,
    isolation: spec.isolation,
    codeDir,
    entry: spec.code.entry,
    handler: spec.handler,
    env: spec.env,
    loadTimeoutMs: loadTimeoutMs(spec),
    ...(spec.userns !== undefined ? { userns: spec.userns } : {}),
    ...(spec.network && spec.network.mode !== 'none' ? { network: containerNetwork(spec) } : {}),
  };
}
