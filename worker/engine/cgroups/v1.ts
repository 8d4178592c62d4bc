/**
 * cgroup v1: one hierarchy per controller (or per group of co-mounted controllers, such
 * as "cpu,cpuacct"), and the same relative path made in each. A container's init joins
 * every one of them, so procsFiles has one entry per distinct hierarchy.
 */
import path from 'node:path';
import type { CgroupDriver, CgroupLimits, CgroupStats } from './index.js';
import type { CgroupFs } from './fs.js';
import { CgroupError, errnoOf } from './errors.js';
import { blkioThrottleWrites, blkioUnsupported, parseBlkioServiceBytes } from './io.js';
import { BaseCgroup, checkName, rootRaced, limitValue, removeIfEmpty, sigkillAll, waitUntil, writeError } from './common.js';

export const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'freezer'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];
/**
 * Joined where mounted, needed only by containers with block I/O limits. Every
 * container joins it (a limit may come at specialisation, when joining would be a
 * migration of running tasks); one more cgroup.procs write per start, off the request
 * path for seeds.
 */
export const V1_OPTIONAL_CONTROLLERS = ['blkio'] as const;
type Dirs = Record<V1Controller, string> & { blkio?: string };

/**
 * cpuacct.stat counts in USER_HZ ticks, which the kernel fixes at 100 for userspace on
 * every architecture faasbox runs on (x86-64, arm64), whatever CONFIG_HZ is.
 */
const USER_HZ = 100;

export class CgroupV1 implements CgroupDriver {
  readonly version = 1 as const;
  private readonly hierarchies: string[];

  constructor(
    private readonly fs: CgroupFs,
    /** Controller -> mount point of its hierarchy (co-mounted controllers share one). */
    private readonly mounts: ReadonlyMap<string, string>,
    readonly root: string,
  ) {
    const missing = V1_CONTROLLERS.filter((c) => !mounts.has(c));
    if (missing.length) {
      throw new CgroupError('CGROUP_UNSUPPORTED', '/proc/self/mountinfo', `cgroup v1 controllers not mounted: ${missing.join(', ')}`);
    }
    const present = [...V1_CONTROLLERS, ...V1_OPTIONAL_CONTROLLERS.filter((c) => mounts.has(c))];
    this.controllers = present;
    this.hierarchies = [...new Set(present.map((c) => mounts.get(c)!))];
  }

  private readonly controllers: string[];

  private dirsOf(name: string): Dirs {
    return Object.fromEntries(this.controllers.map((c) => [c, `${this.mounts.get(c)}${this.root}/${name}`])) as Dirs;
  }

  /** The root path in every hierarchy, each component made if missing (v1 needs no delegation). */
  private ensureRoot(): void {
    const parts = this.root.split('/').filter(Boolean);
    for (const mount of this.hierarchies) {
      let dir = mount;
      for (const part of parts) {
        dir = `${dir}/${part}`;
        try {
          this.fs.mkdir(dir);
        } catch (err) {
          if (errnoOf(err) !== 'EEXIST') throw new CgroupError('CGROUP_IO', dir, 'cannot create the faasbox cgroup root', { cause: err });
        }
      }
    }
  }

  create(name: string, limits: CgroupLimits, retried = false): CgroupV1Group {
    checkName(name, this.root);
    if (rootRaced(() => this.ensureRoot(), retried)) return this.create(name, limits, true);
    const group = new CgroupV1Group(this.fs, name, this.dirsOf(name));
    group.assume({ cpuBurstUs: 0 });
    const made: string[] = [];
    const undo = () => {
      for (const d of made.reverse()) {
        try {
          this.fs.rmdir(d);
        } catch {
          // The original error matters more; gc removes what is left.
        }
      }
    };
    for (const dir of group.directories) {
      try {
        this.fs.mkdir(dir);
        made.push(dir);
      } catch (err) {
        undo();
        // The root was removed between ensureRoot and here (another engine found it empty): once more.
        if (errnoOf(err) === 'ENOENT' && !retried) return this.create(name, limits, true);
        if (errnoOf(err) === 'EEXIST') throw new CgroupError('CGROUP_EXISTS', dir, `cgroup ${name} already exists`);
        throw new CgroupError('CGROUP_IO', dir, `cannot create cgroup ${name}`, { cause: err });
      }
    }
    try {
      group.setLimits(limits);
    } catch (err) {
      undo();
      throw err;
    }
    return group;
  }

  open(name: string): CgroupV1Group | undefined {
    checkName(name, this.root, true);
    const group = new CgroupV1Group(this.fs, name, this.dirsOf(name));
    // A crash between two mkdirs leaves a cgroup in some hierarchies only: still ours to remove.
    return group.directories.some((d) => this.fs.exists(d)) ? group : undefined;
  }

  list(): string[] {
    const names = new Set<string>();
    for (const mount of this.hierarchies) for (const n of this.fs.dirs(`${mount}${this.root}`)) names.add(n);
    return [...names].sort();
  }

  removeRoot(opts: { parent?: boolean } = {}): void {
    const parent = path.posix.dirname(this.root);
    for (const mount of this.hierarchies) {
      removeIfEmpty(this.fs, `${mount}${this.root}`);
      if (opts.parent && parent !== '/') removeIfEmpty(this.fs, `${mount}${parent}`);
    }
  }

  rootCpuUsec(): number | undefined {
    try {
      return Number(this.fs.read(`${this.mounts.get('cpuacct')}${this.root}/cpuacct.usage`)) / 1000;
    } catch {
      return undefined;
    }
  }

  rename(from: string, to: string): CgroupV1Group {
    checkName(from, this.root, true);
    checkName(to, this.root);
    const src = new CgroupV1Group(this.fs, from, this.dirsOf(from)).directories;
    const dst = new CgroupV1Group(this.fs, to, this.dirsOf(to));
    const done: number[] = [];
    for (let i = 0; i < src.length; i++) {
      try {
        this.fs.rename(src[i]!, dst.directories[i]!);
        done.push(i);
      } catch (err) {
        // All or nothing, so that the cgroup keeps one name across the hierarchies.
        for (const j of done.reverse()) {
          try {
            this.fs.rename(dst.directories[j]!, src[j]!);
          } catch {
            // gc removes a cgroup split between two names (both are under the root).
          }
        }
        if (errnoOf(err) === 'EEXIST' || errnoOf(err) === 'ENOTEMPTY') throw new CgroupError('CGROUP_EXISTS', dst.directories[i]!, `cgroup ${to} already exists`);
        throw new CgroupError('CGROUP_IO', src[i]!, `cannot rename cgroup ${from} to ${to}`, { cause: err });
      }
    }
    return dst;
  }
}

export class CgroupV1Group extends BaseCgroup {
  constructor(
    fs: CgroupFs,
    name: string,
    private readonly by: Dirs,
  ) {
    super(fs, name, [...new Set(Object.values(by))]);
  }

  get directories(): string[] {
    return this.dirs;
  }

  protected writeLimits(l: CgroupLimits): void {
    const { memory, cpu, pids } = this.by;
    if (l.memoryBytes !== undefined) this.setMemory(limitValue(l.memoryBytes, `${memory}/memory.limit_in_bytes`, '-1'));
    this.writeCpuBandwidth(l, `${cpu}/cpu.cfs_burst_us`, () => {
      // The period first: the quota is validated against the period it will run with.
      if (l.cpuPeriodUs !== undefined) this.writeFile(`${cpu}/cpu.cfs_period_us`, limitValue(l.cpuPeriodUs, `${cpu}/cpu.cfs_period_us`));
      if (l.cpuQuotaUs !== undefined) this.writeFile(`${cpu}/cpu.cfs_quota_us`, limitValue(l.cpuQuotaUs, `${cpu}/cpu.cfs_quota_us`, '-1'));
    });
    if (l.pids !== undefined) this.writeFile(`${pids}/pids.max`, limitValue(l.pids, `${pids}/pids.max`, 'max'));
    if (l.io !== undefined) {
      const dir = this.by.blkio;
      if (!dir || !this.fs.exists(`${dir}/blkio.throttle.read_bps_device`)) throw blkioUnsupported(dir ?? '/proc/self/mountinfo', 'no blkio hierarchy with throttling is mounted');
      for (const [file, value] of blkioThrottleWrites(l.io, dir)) this.writeFile(file, value);
    }
  }

  /**
   * Memory with no swap. memory.memsw.limit_in_bytes bounds memory+swap and the kernel
   * refuses to let it fall below memory.limit_in_bytes (EINVAL), so the order of the two
   * writes depends on the direction: raising, memsw goes first; lowering, it goes last.
   * Equal values leave no room for swap. Without swap accounting (no memsw file, e.g.
   * swapaccount=0) swappiness 0 is the remaining way to keep the cgroup out of swap.
   */
  private setMemory(v: string): void {
    const limit = `${this.by.memory}/memory.limit_in_bytes`;
    const memsw = `${this.by.memory}/memory.memsw.limit_in_bytes`;
    if (this.fs.exists(memsw)) {
      const raising = v === '-1' || Number(v) > this.readNumber(limit, Infinity);
      for (const path of raising ? [memsw, limit] : [limit, memsw]) this.writeFile(path, v);
    } else {
      this.writeFile(limit, v);
    }
    const swappiness = `${this.by.memory}/memory.swappiness`;
    if (!this.fs.exists(swappiness)) return;
    try {
      this.fs.write(swappiness, '0');
    } catch (err) {
      // Some kernels (before 4.x, with use_hierarchy) refuse a per-cgroup swappiness
      // with EINVAL; memsw still bounds swap there. Any other failure is real.
      if (errnoOf(err) !== 'EINVAL') throw writeError(err, swappiness, '0');
    }
  }

  stats(): CgroupStats {
    const { cpu, cpuacct, memory, pids } = this.by;
    const throttle = this.readKeyed(`${cpu}/cpu.stat`);
    const oom = this.readKeyed(`${memory}/memory.oom_control`);
    return {
      cpuUsageUsec: Math.round(this.readNumber(`${cpuacct}/cpuacct.usage`) / 1000),
      ...this.userSystem(),
      memoryCurrentBytes: this.readNumber(`${memory}/memory.usage_in_bytes`),
      memoryPeakBytes: this.readNumber(`${memory}/memory.max_usage_in_bytes`),
      // oom_kill appeared in Linux 4.13; older kernels report none.
      oomKills: oom.oom_kill ?? 0,
      pidsCurrent: this.readNumber(`${pids}/pids.current`),
      throttledPeriods: throttle.nr_throttled ?? 0,
      throttledUsec: Math.round((throttle.throttled_time ?? 0) / 1000),
      ...this.ioUsage(),
    };
  }

  /** Read before and after every invocation: kept open, as cpuacct.usage is. No blkio hierarchy: zeros. */
  ioUsage(): { ioReadBytes: number; ioWriteBytes: number } {
    const text = this.by.blkio && this.readKept(`${this.by.blkio}/blkio.throttle.io_service_bytes`);
    return text ? parseBlkioServiceBytes(text) : { ioReadBytes: 0, ioWriteBytes: 0 };
  }

  usage(): Pick<CgroupStats, 'cpuUsageUsec' | 'memoryPeakBytes'> {
    return {
      cpuUsageUsec: Math.round(this.readHot(`${this.by.cpuacct}/cpuacct.usage`) / 1000),
      memoryPeakBytes: this.readHot(`${this.by.memory}/memory.max_usage_in_bytes`),
    };
  }

  private readHot(path: string): number {
    const v = Number(this.readKept(path)?.trim());
    return Number.isNaN(v) ? this.readNumber(path) : v;
  }

  /** Nanoseconds from cpuacct.usage_user/_sys where the kernel has them (4.6+), else ticks from cpuacct.stat. */
  private userSystem(): { userUsec: number; systemUsec: number } {
    const dir = this.by.cpuacct;
    const user = this.readNumber(`${dir}/cpuacct.usage_user`, NaN);
    const sys = this.readNumber(`${dir}/cpuacct.usage_sys`, NaN);
    if (!Number.isNaN(user) && !Number.isNaN(sys)) return { userUsec: Math.round(user / 1000), systemUsec: Math.round(sys / 1000) };
    const ticks = this.readKeyed(`${dir}/cpuacct.stat`);
    return { userUsec: ((ticks.user ?? 0) * 1_000_000) / USER_HZ, systemUsec: ((ticks.system ?? 0) * 1_000_000) / USER_HZ };
  }

  resetPeak(): void {
    const path = `${this.by.memory}/memory.max_usage_in_bytes`;
    if (!this.writeKept(path, '0')) this.writeFile(path, '0');
  }

  protected writeFreeze(frozen: boolean): void {
    this.writeFreezer(`${this.by.freezer}/freezer.state`, frozen ? 'FROZEN' : 'THAWED');
  }

  protected isFrozen(): boolean {
    // Each read also makes the kernel check again whether FREEZING has become FROZEN.
    return this.fs.read(`${this.by.freezer}/freezer.state`).trim() === 'FROZEN';
  }

  protected async killAll(): Promise<void> {
    // A frozen task cannot fork, so the member list read while frozen is complete; the
    // SIGKILLs stay pending and take effect the moment the cgroup thaws.
    const state = `${this.by.freezer}/freezer.state`;
    this.writeFile(state, 'FROZEN');
    try {
      // FREEZING lasts until every task has stopped; a task in uninterruptible sleep can
      // hold it there, so after a second we kill anyway and kill() comes back for more.
      await waitUntil(() => this.fs.read(state).trim() === 'FROZEN', 1000);
      sigkillAll(this.pids());
    } finally {
      // Also the end of a freeze() of the idle container: the kills land as it thaws.
      this.thaw();
    }
  }
}
