/**
 * cgroup v1 and v2 behind one small interface, chosen once per process by the magic
 * number of /sys/fs/cgroup (as youki's libcgroups does). Both flavours share every
 * piece of logic that does not depend on the file layout; the layout lives in v1.ts
 * and v2.ts. File access goes through CgroupFs so unit tests can run the same code
 * against fabricated cgroupfs trees.
 */
import { statfsSync, readFileSync } from 'node:fs';
import { CgroupV1 } from './v1.js';
import { CgroupV2 } from './v2.js';
import { realFs, type CgroupFs } from './fs.js';

export { CgroupError, type CgroupErrorCode } from './errors.js';
export { realFs, type CgroupFs } from './fs.js';

export interface CgroupLimits {
  memoryBytes?: number;
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  pids?: number;
}

export interface CgroupStats {
  cpuUsageUsec: number;
  memoryCurrentBytes: number;
  memoryPeakBytes: number;
  oomKills: number;
  pidsCurrent: number;
  throttledPeriods: number;
  throttledUsec: number;
}

export interface Cgroup {
  /** Relative to the driver's root, e.g. "3f9a0c..." */
  readonly name: string;
  /** Every cgroup.procs the container's init must join: one per v1 hierarchy, one for v2. */
  readonly procsFiles: string[];
  setLimits(l: CgroupLimits): void;
  stats(): CgroupStats;
  /** Starts a new peak-memory measurement. */
  resetPeak(): void;
  pids(): number[];
  /** Every process, forks racing included; resolves when the cgroup is empty. */
  kill(): Promise<void>;
  /** kill(), then remove the directories. Idempotent. */
  destroy(): Promise<void>;
}

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** The path under which every cgroup faasbox makes lives, e.g. "/faasbox". */
  readonly root: string;
  create(name: string, limits: CgroupLimits): Cgroup;
  open(name: string): Cgroup | undefined;
  list(): string[];
  /** Removes the root itself once it is empty (tests and benchmarks use private roots). */
  removeRoot(): void;
}

export const CGROUP2_SUPER_MAGIC = 0x63677270;

export interface DetectOptions {
  root?: string;
  /** Where the cgroup filesystems are mounted. */
  mountRoot?: string;
  /** /proc/self/mountinfo contents (tests). */
  mountinfo?: string;
  /** Force a flavour (tests). */
  version?: 1 | 2;
  fs?: CgroupFs;
}

export function detectCgroupDriver(opts: DetectOptions = {}): CgroupDriver {
  const root = normalizeRoot(opts.root ?? process.env.FAASBOX_CGROUP_ROOT ?? '/faasbox');
  const mountRoot = opts.mountRoot ?? '/sys/fs/cgroup';
  const fs = opts.fs ?? realFs;
  const version = opts.version ?? (statfsSync(mountRoot).type === CGROUP2_SUPER_MAGIC ? 2 : 1);
  if (version === 2) return new CgroupV2(fs, mountRoot, root);
  const mountinfo = opts.mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
  return new CgroupV1(fs, v1Mounts(mountinfo), root);
}

function normalizeRoot(root: string): string {
  const r = `/${root.replace(/^\/+|\/+$/g, '')}`;
  if (r === '/' || r.includes('..')) throw new Error(`cgroup root must be a named path below the hierarchy root, got "${root}"`);
  return r;
}

/** Controller -> mount point, from mountinfo lines of type cgroup (v1). */
export function v1Mounts(mountinfo: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , superOpts] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup') continue;
    const mountPoint = line.split(' ')[4]!;
    for (const opt of (superOpts ?? '').split(',')) {
      if (['memory', 'cpu', 'cpuacct', 'pids', 'freezer'].includes(opt) && !out.has(opt)) out.set(opt, mountPoint);
    }
  }
  return out;
}
