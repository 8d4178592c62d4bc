/**
 * cgroup v1 and v2 behind one small interface, chosen once per process by the
 * filesystem magic of /sys/fs/cgroup (as youki's libcgroups does). The layout of each
 * flavour lives in v1.ts and v2.ts; what they share (listing, kill-and-wait, removal)
 * in common.ts. Every file access goes through CgroupFs, so unit tests run the very
 * same driver logic against fabricated cgroupfs trees of both flavours.
 */
import { statfsSync, readFileSync } from 'node:fs';
import { CgroupV1 } from './v1.js';
import { CgroupV2 } from './v2.js';
import { realFs, type CgroupFs } from './fs.js';
import { v1ControllerMounts } from './mountinfo.js';
import { CgroupError } from './errors.js';
import type { IoLimit, IoUsage } from './io.js';

export { CgroupError, type CgroupErrorCode } from './errors.js';
export type { IoLimit, IoUsage } from './io.js';
export { realFs, type CgroupFs, type CgroupFile } from './fs.js';
export { v1ControllerMounts } from './mountinfo.js';
export { parseKeyed, parsePids } from './common.js';
export { CgroupV1, CgroupV1Group, V1_CONTROLLERS } from './v1.js';
export { CgroupV2, CgroupV2Group, V2_CONTROLLERS, WORKER_LEAF } from './v2.js';

/** A negative or infinite value means "no limit" (memory, quota, pids); undefined leaves the value alone. */
export interface CgroupLimits {
  /** Memory, with swap disabled. */
  memoryBytes?: number;
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  /** CFS burst (at most the quota); 0: none. Skipped where the kernel has no burst file. */
  cpuBurstUs?: number;
  pids?: number;
  /** Block I/O limits on one device (io.ts); a field 0 or absent: none on that axis. */
  io?: IoLimit;
}

export interface CgroupStats {
  cpuUsageUsec: number;
  userUsec?: number;
  systemUsec?: number;
  memoryCurrentBytes: number;
  /** Since creation or the last resetPeak() (v2 before Linux 6.12: since creation). */
  memoryPeakBytes: number;
  /** Processes the kernel's OOM killer killed in this cgroup. */
  oomKills: number;
  pidsCurrent: number;
  throttledPeriods: number;
  throttledUsec: number;
  /** Bytes read from / written to block devices (v2 io.stat, v1 blkio.throttle.io_service_bytes); 0 where the controller is absent. */
  ioReadBytes: number;
  ioWriteBytes: number;
}

export interface Cgroup {
  /** Relative to the driver's root, e.g. "3f9a0c..." */
  readonly name: string;
  /** Every cgroup.procs the container's init must join: one per v1 hierarchy, one for v2. */
  readonly procsFiles: string[];
  /** cgroup v2: the directory a process can be cloned straight into (CLONE_INTO_CGROUP). */
  readonly cloneInto?: string;
  /** Writes the limits given that differ from what the cgroup is known to hold. */
  setLimits(l: CgroupLimits): void;
  /** Records limits the cgroup holds already (written another way), so setLimits skips them. */
  assume(l: CgroupLimits): void;
  stats(): CgroupStats;
  /** Just CPU time and peak memory: two reads, for the per-invocation hot path. */
  usage(): Pick<CgroupStats, 'cpuUsageUsec' | 'memoryPeakBytes'>;
  /** Starts a new peak-memory measurement (per invocation, for reused containers). */
  resetPeak(): void;
  /** Block I/O bytes since creation: one read, for before and after an invocation. */
  ioUsage(): IoUsage;
  pids(): number[];
  /**
   * Stops every member (cgroup freezer: v1 freezer.state, v2 cgroup.freeze) and resolves
   * true once the kernel reports them all frozen, false if thaw() came first; throws
   * CGROUP_BUSY (thawed again) when a task would not stop in time. kill() works on a
   * frozen cgroup.
   */
  freeze(timeoutMs?: number): Promise<boolean>;
  /** Undoes freeze() (also one still waiting): one write, effective at once. */
  thaw(): void;
  /**
   * Every process, forks racing included; resolves when cgroup.procs is empty (exited
   * tasks that their parent has yet to reap may still count in pidsCurrent).
   */
  kill(): Promise<void>;
  /** kill(), then remove the directories. Idempotent. */
  destroy(): Promise<void>;
}

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** The path under which every cgroup faasbox makes lives, e.g. "/faasbox". */
  readonly root: string;
  /** Fails with CGROUP_EXISTS if the cgroup exists (in any v1 hierarchy). */
  create(name: string, limits: CgroupLimits): Cgroup;
  /** The cgroup if it exists, even partly (a crash between two v1 mkdirs). */
  open(name: string): Cgroup | undefined;
  /** Names under the root, for garbage collection. */
  list(): string[];
  /**
   * Removes the root itself if it is empty; with parent, also the level above it if that
   * is empty then (the engine's default root is /faasbox/<state dir hash>, and /faasbox is
   * faasbox's too). Another engine creating its root meanwhile retries (create).
   */
  removeRoot(opts?: { parent?: boolean }): void;
  /** CPU time of everything under the root, dead cgroups' included (benchmarks); undefined if unreadable. */
  rootCpuUsec(): number | undefined;
  /**
   * Renames a cgroup, processes and limits included (cgroup v1 only: v2 refuses renames).
   * Seeds use it: a cgroup made and joined ahead of demand becomes the container's.
   */
  rename?(from: string, to: string): Cgroup;
}

export const CGROUP2_SUPER_MAGIC = 0x63677270;

export interface DetectOptions {
  /** Default: "/faasbox" (the CLI passes $FAASBOX_CGROUP_ROOT). */
  root?: string;
  /** Where the cgroup filesystems are mounted. Default: /sys/fs/cgroup. */
  mountRoot?: string;
  /** /proc/self/mountinfo contents (tests). */
  mountinfo?: string;
  /** Skip the statfs probe (tests on fabricated trees, which are not cgroupfs). */
  version?: 1 | 2;
  fs?: CgroupFs;
}

export function detectCgroupDriver(opts: DetectOptions = {}): CgroupDriver {
  const root = normalizeRoot(opts.root ?? '/faasbox');
  const mountRoot = (opts.mountRoot ?? '/sys/fs/cgroup').replace(/\/+$/, '');
  const fs = opts.fs ?? realFs;
  const version = opts.version ?? cgroupVersionAt(mountRoot);
  if (version === 2) return new CgroupV2(fs, mountRoot, root);
  const mountinfo = opts.mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
  return new CgroupV1(fs, v1ControllerMounts(mountinfo), root);
}

/** 2 when path is a cgroup2 mount (pure v2 host); anything else (tmpfs of v1 mounts) is v1. */
export function cgroupVersionAt(path: string): 1 | 2 {
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (err) {
    throw new CgroupError('CGROUP_UNSUPPORTED', path, 'cannot inspect the cgroup mount', { cause: err, hint: 'mount the cgroup filesystems (cgroup2 at /sys/fs/cgroup, or the v1 controllers below it)' });
  }
  return type === CGROUP2_SUPER_MAGIC ? 2 : 1;
}

/** "faasbox", "/faasbox/" -> "/faasbox"; refuses the hierarchy root itself and "..". */
export function normalizeRoot(root: string): string {
  const parts = root.split('/').filter(Boolean);
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..')) {
    throw new CgroupError('CGROUP_INVALID_NAME', root, `cgroup root must be a path below the hierarchy root, got "${root}"`, {
      hint: 'set FAASBOX_CGROUP_ROOT to something like /faasbox',
    });
  }
  return `/${parts.join('/')}`;
}
