/**
 * A container's resource limits (ResourceLimits, in cores and bytes) become the cgroup's
 * values (quota and period in microseconds) here, once: toConfig() uses it for a new
 * container, Container.updateLimits() for one whose limits change while it runs (a stem
 * cell specialised for a function). Neither derives a quota or checks a burst itself.
 */
import type { CgroupLimits } from './cgroups/index.js';
import { InvalidSpecError } from './errors.js';
import type { ResourceLimits } from './spec.js';

/** CFS period: 100 ms, the kernel's default, so a quota reads as cores x 100 ms. */
export const CPU_PERIOD_US = 100_000;
/** The smallest memory limit a container can start its init in. */
const MIN_MEMORY_BYTES = 4 * 1024 * 1024;

function positiveInt(field: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidSpecError(field, `must be a positive integer, got ${v}`);
  return v;
}

/**
 * The cgroup values of `limits`. Only the fields given are in the result (an update writes
 * only what changes); `currentCpus` is the quota in force, against which a burst given
 * without a new quota is checked.
 */
export function cgroupLimits(limits: ResourceLimits, currentCpus?: number): CgroupLimits {
  const out: CgroupLimits = {};
  if (limits.memoryBytes !== undefined) {
    out.memoryBytes = positiveInt('limits.memoryBytes', limits.memoryBytes);
    if (out.memoryBytes < MIN_MEMORY_BYTES) throw new InvalidSpecError('limits.memoryBytes', 'must be at least 4 MiB');
  }
  const cpus = limits.cpus ?? currentCpus;
  if (limits.cpus !== undefined) {
    if (!(limits.cpus > 0 && limits.cpus <= 1024)) throw new InvalidSpecError('limits.cpus', `must be in (0, 1024], got ${limits.cpus}`);
    out.cpuQuotaUs = Math.round(limits.cpus * CPU_PERIOD_US);
    out.cpuPeriodUs = CPU_PERIOD_US;
  }
  if (limits.cpuBurst !== undefined) {
    // The kernel refuses a burst above the quota (EINVAL).
    if (!(limits.cpuBurst >= 0 && limits.cpuBurst <= (cpus ?? Infinity))) {
      throw new InvalidSpecError('limits.cpuBurst', `must be in [0, limits.cpus = ${cpus}], got ${limits.cpuBurst}`);
    }
    out.cpuBurstUs = Math.round(limits.cpuBurst * CPU_PERIOD_US);
  }
  if (limits.pids !== undefined) out.pids = positiveInt('limits.pids', limits.pids);
  return out;
}

/** The cores a cgroup's quota stands for (the inverse of cgroupLimits' quota). */
export function cpusOf(cgroup: CgroupLimits): number | undefined {
  return cgroup.cpuQuotaUs === undefined ? undefined : cgroup.cpuQuotaUs / (cgroup.cpuPeriodUs ?? CPU_PERIOD_US);
}
