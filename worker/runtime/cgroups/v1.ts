/**
 * cgroup v1: one directory per controller hierarchy (memory, cpu, cpuacct, pids,
 * freezer), the same relative path in each. Co-mounted controllers share a directory.
 */
import type { CgroupDriver, CgroupLimits, CgroupStats } from './index.js';
import type { CgroupFs } from './fs.js';
import { CgroupError } from './errors.js';
import { BaseCgroup, sigkillAll, waitUntil } from './common.js';

const CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'freezer'] as const;
type Controller = (typeof CONTROLLERS)[number];

export class CgroupV1 implements CgroupDriver {
  readonly version = 1 as const;

  constructor(
    private readonly fs: CgroupFs,
    private readonly mounts: Map<string, string>,
    readonly root: string,
  ) {
    const missing = CONTROLLERS.filter((c) => !mounts.has(c));
    if (missing.length) {
      throw new CgroupError('CGROUP_UNSUPPORTED', '/proc/self/mountinfo', `cgroup v1 controllers not mounted: ${missing.join(', ')}`, {
        hint: 'faasbox needs memory, cpu, cpuacct, pids and freezer',
      });
    }
  }

  private dirsOf(name: string): Record<Controller, string> {
    return Object.fromEntries(CONTROLLERS.map((c) => [c, `${this.mounts.get(c)}${this.root}/${name}`])) as Record<Controller, string>;
  }

  private ensureRoot(): void {
    for (const mount of new Set(this.mounts.values())) {
      const dir = `${mount}${this.root}`;
      if (!this.fs.exists(dir)) {
        try {
          this.fs.mkdir(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new CgroupError('CGROUP_IO', dir, 'cannot create the faasbox cgroup root', { cause: err });
        }
      }
    }
  }

  create(name: string, limits: CgroupLimits): CgroupV1Group {
    this.ensureRoot();
    const dirs = this.dirsOf(name);
    const made: string[] = [];
    for (const dir of new Set(Object.values(dirs))) {
      try {
        this.fs.mkdir(dir);
        made.push(dir);
      } catch (err) {
        for (const d of made.reverse()) this.fs.rmdir(d);
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new CgroupError('CGROUP_EXISTS', dir, `cgroup ${name} already exists`);
        throw new CgroupError('CGROUP_IO', dir, 'cannot create cgroup', { cause: err });
      }
    }
    const cg = new CgroupV1Group(this.fs, name, dirs);
    try {
      cg.setLimits(limits);
    } catch (err) {
      for (const d of made.reverse()) this.fs.rmdir(d);
      throw err;
    }
    return cg;
  }

  open(name: string): CgroupV1Group | undefined {
    const dirs = this.dirsOf(name);
    if (!Object.values(dirs).some((d) => this.fs.exists(d))) return undefined;
    return new CgroupV1Group(this.fs, name, dirs);
  }

  list(): string[] {
    const names = new Set<string>();
    for (const mount of new Set(this.mounts.values())) for (const n of this.fs.dirs(`${mount}${this.root}`)) names.add(n);
    return [...names];
  }

  removeRoot(): void {
    for (const mount of new Set(this.mounts.values())) {
      try {
        this.fs.rmdir(`${mount}${this.root}`);
      } catch {
        // not empty or already gone
      }
    }
  }
}

export class CgroupV1Group extends BaseCgroup {
  constructor(
    fs: CgroupFs,
    name: string,
    private readonly by: Record<Controller, string>,
  ) {
    super(fs, name, [...new Set(Object.values(by))]);
  }

  protected get primary(): string {
    return this.by.pids;
  }

  setLimits(l: CgroupLimits): void {
    if (l.memoryBytes !== undefined) {
      const limit = `${this.by.memory}/memory.limit_in_bytes`;
      const memsw = `${this.by.memory}/memory.memsw.limit_in_bytes`;
      const v = String(l.memoryBytes);
      // memsw (memory+swap) may never be below the memory limit: raise it first when
      // growing, lower it last when shrinking. Equal values mean no swap at all.
      const hasMemsw = this.fs.exists(memsw);
      try {
        this.fs.write(limit, v);
        if (hasMemsw) this.fs.write(memsw, v);
      } catch {
        if (hasMemsw) this.writeFile(memsw, v);
        this.writeFile(limit, v);
      }
    }
    if (l.cpuPeriodUs !== undefined) this.writeFile(`${this.by.cpu}/cpu.cfs_period_us`, String(l.cpuPeriodUs));
    if (l.cpuQuotaUs !== undefined) this.writeFile(`${this.by.cpu}/cpu.cfs_quota_us`, String(l.cpuQuotaUs));
    if (l.pids !== undefined) this.writeFile(`${this.by.pids}/pids.max`, String(l.pids));
  }

  stats(): CgroupStats {
    const cpu = this.readKeyed(`${this.by.cpu}/cpu.stat`);
    const oom = this.readKeyed(`${this.by.memory}/memory.oom_control`);
    return {
      cpuUsageUsec: Math.round(this.readNumber(`${this.by.cpuacct}/cpuacct.usage`) / 1000),
      memoryCurrentBytes: this.readNumber(`${this.by.memory}/memory.usage_in_bytes`),
      memoryPeakBytes: this.readNumber(`${this.by.memory}/memory.max_usage_in_bytes`),
      oomKills: oom.oom_kill ?? 0,
      pidsCurrent: this.readNumber(`${this.by.pids}/pids.current`),
      throttledPeriods: cpu.nr_throttled ?? 0,
      throttledUsec: Math.round((cpu.throttled_time ?? 0) / 1000),
    };
  }

  resetPeak(): void {
    this.writeFile(`${this.by.memory}/memory.max_usage_in_bytes`, '0');
  }

  protected async killAll(): Promise<void> {
    // Frozen tasks cannot fork, so the list read below is complete when the signal lands.
    const state = `${this.by.freezer}/freezer.state`;
    this.writeFile(state, 'FROZEN');
    await waitUntil(() => this.fs.read(state).trim() === 'FROZEN', 1000);
    sigkillAll(this.pids());
    this.writeFile(state, 'THAWED');
  }
}
