/**
 * cgroup v2: one unified directory per cgroup. Controllers must be enabled in the
 * parents' cgroup.subtree_control; faasbox enables memory, cpu and pids in its own root
 * and in the hierarchy root (the one cgroup it touches that it did not create, and
 * only to delegate those controllers).
 */
import { openSync, writeSync, readSync, closeSync } from 'node:fs';
import type { CgroupDriver, CgroupLimits, CgroupStats } from './index.js';
import type { CgroupFs } from './fs.js';
import { CgroupError } from './errors.js';
import { BaseCgroup, sigkillAll, waitUntil } from './common.js';

const NEEDED = ['memory', 'cpu', 'pids'];

export class CgroupV2 implements CgroupDriver {
  readonly version = 2 as const;

  constructor(
    private readonly fs: CgroupFs,
    private readonly mountRoot: string,
    readonly root: string,
  ) {}

  private get rootDir(): string {
    return `${this.mountRoot}${this.root}`;
  }

  private enable(dir: string): void {
    const available = this.fs.read(`${dir}/cgroup.controllers`).trim().split(/\s+/);
    const missing = NEEDED.filter((c) => !available.includes(c));
    if (missing.length) {
      throw new CgroupError('CGROUP_UNSUPPORTED', dir, `cgroup v2 controllers not available: ${missing.join(', ')}`, { hint: 'enable them in the parent cgroup (delegation)' });
    }
    const enabled = this.fs.read(`${dir}/cgroup.subtree_control`).trim().split(/\s+/);
    const todo = NEEDED.filter((c) => !enabled.includes(c));
    if (todo.length) {
      try {
        this.fs.write(`${dir}/cgroup.subtree_control`, todo.map((c) => `+${c}`).join(' '));
      } catch (err) {
        throw new CgroupError('CGROUP_IO', `${dir}/cgroup.subtree_control`, 'cannot enable controllers', {
          cause: err,
          hint: 'the cgroup may hold processes itself (the no-internal-processes rule); run faasbox in a leaf of its own',
        });
      }
    }
  }

  private ensureRoot(): void {
    if (!this.fs.exists(this.rootDir)) {
      this.enable(this.mountRoot);
      try {
        this.fs.mkdir(this.rootDir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new CgroupError('CGROUP_IO', this.rootDir, 'cannot create the faasbox cgroup root', { cause: err });
      }
    }
    this.enable(this.rootDir);
  }

  create(name: string, limits: CgroupLimits): CgroupV2Group {
    this.ensureRoot();
    const dir = `${this.rootDir}/${name}`;
    try {
      this.fs.mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new CgroupError('CGROUP_EXISTS', dir, `cgroup ${name} already exists`);
      throw new CgroupError('CGROUP_IO', dir, 'cannot create cgroup', { cause: err });
    }
    const cg = new CgroupV2Group(this.fs, name, dir);
    try {
      cg.setLimits(limits);
    } catch (err) {
      this.fs.rmdir(dir);
      throw err;
    }
    return cg;
  }

  open(name: string): CgroupV2Group | undefined {
    const dir = `${this.rootDir}/${name}`;
    return this.fs.exists(dir) ? new CgroupV2Group(this.fs, name, dir) : undefined;
  }

  list(): string[] {
    return this.fs.dirs(this.rootDir);
  }

  removeRoot(): void {
    try {
      this.fs.rmdir(this.rootDir);
    } catch {
      // not empty or already gone
    }
  }
}

export class CgroupV2Group extends BaseCgroup {
  /** memory.peak resets per open file (kernel 6.12+): the fd that reset it must read it. */
  private peakFd: number | undefined;

  constructor(
    fs: CgroupFs,
    name: string,
    private readonly dir: string,
  ) {
    super(fs, name, [dir]);
  }

  protected get primary(): string {
    return this.dir;
  }

  setLimits(l: CgroupLimits): void {
    if (l.memoryBytes !== undefined) {
      this.writeFile(`${this.dir}/memory.max`, String(l.memoryBytes));
      this.writeFile(`${this.dir}/memory.swap.max`, '0', true);
    }
    if (l.cpuQuotaUs !== undefined || l.cpuPeriodUs !== undefined) {
      const [q, p] = this.fs.read(`${this.dir}/cpu.max`).trim().split(/\s+/);
      this.writeFile(`${this.dir}/cpu.max`, `${l.cpuQuotaUs ?? q} ${l.cpuPeriodUs ?? p}`);
    }
    if (l.pids !== undefined) this.writeFile(`${this.dir}/pids.max`, String(l.pids));
  }

  stats(): CgroupStats {
    const cpu = this.readKeyed(`${this.dir}/cpu.stat`);
    const events = this.readKeyed(`${this.dir}/memory.events`);
    const current = this.readNumber(`${this.dir}/memory.current`);
    return {
      cpuUsageUsec: cpu.usage_usec ?? 0,
      memoryCurrentBytes: current,
      memoryPeakBytes: this.readPeak() ?? current,
      oomKills: events.oom_kill ?? 0,
      pidsCurrent: this.readNumber(`${this.dir}/pids.current`),
      throttledPeriods: cpu.nr_throttled ?? 0,
      throttledUsec: cpu.throttled_usec ?? 0,
    };
  }

  private readPeak(): number | undefined {
    if (this.peakFd !== undefined) {
      const buf = Buffer.alloc(32);
      const n = readSync(this.peakFd, buf, 0, 32, 0);
      return Number(buf.subarray(0, n).toString().trim());
    }
    const v = this.readNumber(`${this.dir}/memory.peak`, NaN);
    return Number.isNaN(v) ? undefined : v;
  }

  resetPeak(): void {
    try {
      this.peakFd ??= openSync(`${this.dir}/memory.peak`, 'r+');
      writeSync(this.peakFd, 'reset\n');
    } catch {
      // Kernels before 6.12 cannot reset the peak: it stays the peak since creation.
      if (this.peakFd !== undefined) closeSync(this.peakFd);
      this.peakFd = undefined;
    }
  }

  protected async killAll(): Promise<void> {
    if (this.fs.exists(`${this.dir}/cgroup.kill`)) {
      // Kernel 5.14+: kills every member atomically, forks included.
      this.writeFile(`${this.dir}/cgroup.kill`, '1');
      return;
    }
    this.writeFile(`${this.dir}/cgroup.freeze`, '1');
    await waitUntil(() => /frozen 1/.test(this.fs.read(`${this.dir}/cgroup.events`)), 1000);
    sigkillAll(this.pids());
    this.writeFile(`${this.dir}/cgroup.freeze`, '0');
  }

  override async destroy(): Promise<void> {
    if (this.peakFd !== undefined) closeSync(this.peakFd);
    this.peakFd = undefined;
    await super.destroy();
  }
}
