/**
 * cgroup v2: one unified directory per cgroup. A controller's files appear in a cgroup
 * only when its parent lists the controller in cgroup.subtree_control, so memory, cpu
 * and pids must be enabled on every level from the hierarchy root down to faasbox's
 * root, the parent of every container cgroup.
 */
import path from 'node:path';
import type { CgroupDriver, CgroupLimits, CgroupStats } from './index.js';
import type { CgroupFile, CgroupFs } from './fs.js';
import { CgroupError, errnoOf } from './errors.js';
import { blkioUnsupported, ioMaxLine, parseIoStat } from './io.js';
import { BaseCgroup, checkName, rootRaced, limitValue, parseKeyed, parsePids, removeIfEmpty, sigkillAll, waitUntil } from './common.js';

export const V2_CONTROLLERS = ['memory', 'cpu', 'pids'] as const;
/** Enabled where the kernel offers it, needed only by containers with block I/O limits (io.max). */
export const V2_OPTIONAL_CONTROLLERS = ['io'] as const;

/**
 * The leaf under faasbox's root that the worker moves itself to when the root is its own
 * cgroup (a systemd unit with Delegate=yes, say). A leading dot: no container name can
 * take it (checkName), and list() leaves it out, so gc never kills the worker.
 */
export const WORKER_LEAF = '.worker';

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

  private words(path: string): string[] {
    try {
      return this.fs.read(path).trim().split(/\s+/).filter(Boolean);
    } catch (err) {
      throw new CgroupError('CGROUP_IO', path, 'cannot read', { cause: err });
    }
  }

  /** Adds the controllers faasbox needs to dir's cgroup.subtree_control. */
  private enable(dir: string): void {
    const available = this.words(`${dir}/cgroup.controllers`);
    const missing = V2_CONTROLLERS.filter((c) => !available.includes(c));
    if (missing.length) {
      throw new CgroupError('CGROUP_UNSUPPORTED', `${dir}/cgroup.controllers`, `cgroup v2 controllers not available: ${missing.join(', ')}`, {
        hint: `enable them in the parent's cgroup.subtree_control, or delegate a subtree to faasbox and point FAASBOX_CGROUP_ROOT at it`,
      });
    }
    const control = `${dir}/cgroup.subtree_control`;
    this.enableOptional(control, available);
    const todo = V2_CONTROLLERS.filter((c) => !this.words(control).includes(c));
    if (!todo.length) return;
    const value = todo.map((c) => `+${c}`).join(' ');
    try {
      this.fs.write(control, value);
    } catch (err) {
      throw new CgroupError('CGROUP_IO', control, `cannot write "${value}"`, {
        cause: err,
        // EBUSY: the no-internal-processes rule (a non-root cgroup with members cannot
        // hand controllers to children).
        hint: 'a cgroup that holds processes cannot enable controllers for children; give faasbox a root cgroup of its own',
      });
    }
  }

  /**
   * Makes faasbox's root cgroup and enables the controllers down to it. Which cgroups
   * are written: the hierarchy root, whose subtree_control is the only way controllers
   * can reach any cgroup on a host where nothing has delegated them (the root cgroup is
   * exempt from the no-internal-processes rule, and enabling a controller sets no
   * limit, so existing cgroups keep their behaviour); every level of the root path that
   * faasbox creates now; and the root itself, which is faasbox's by contract. A level
   * that already exists and is not the root belongs to someone else (a systemd slice,
   * say): it is checked, never written.
   */
  private ensureRoot(): void {
    const parts = this.root.split('/').filter(Boolean);
    let parent = this.mountRoot;
    let parentIsOurs = true; // the mount root: see above
    for (let i = 0; i < parts.length; i++) {
      if (parentIsOurs) this.enable(parent);
      else this.requireEnabled(parent);
      const dir = `${parent}/${parts[i]}`;
      let created = false;
      try {
        this.fs.mkdir(dir);
        created = true;
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw new CgroupError('CGROUP_IO', dir, 'cannot create the faasbox cgroup root', { cause: err });
      }
      parent = dir;
      parentIsOurs = created || i === parts.length - 1;
    }
    this.leaveRoot();
    this.enable(this.rootDir);
  }

  /**
   * The no-internal-processes rule: a non-root cgroup that holds processes cannot enable
   * controllers for its children (EBUSY). When the root holds the worker itself (it was
   * started in the cgroup delegated to it), the worker moves to a leaf of its own first.
   * Anyone else's processes there are not moved: enable() then fails with its hint.
   */
  private leaveRoot(): void {
    const procs = `${this.rootDir}/cgroup.procs`;
    if (!parsePids(this.fs.read(procs)).includes(process.pid)) return;
    const leaf = `${this.rootDir}/${WORKER_LEAF}`;
    try {
      if (!this.fs.exists(leaf)) this.fs.mkdir(leaf);
      this.fs.write(`${leaf}/cgroup.procs`, String(process.pid));
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') return this.leaveRoot();
      throw new CgroupError('CGROUP_IO', leaf, 'cannot move the worker out of the cgroup root it was given', {
        cause: err,
        hint: 'start the worker in a leaf cgroup, or let it write its root cgroup.procs',
      });
    }
  }

  /**
   * Best effort: a kernel that offers io but will not enable it here must not stop every
   * container; only those with io limits then fail (io.max missing: CGROUP_UNSUPPORTED).
   */
  private enableOptional(control: string, available: string[]): void {
    const todo = V2_OPTIONAL_CONTROLLERS.filter((c) => available.includes(c) && !this.words(control).includes(c));
    if (!todo.length) return;
    try {
      this.fs.write(control, todo.map((c) => `+${c}`).join(' '));
    } catch {
      // see above
    }
  }

  private requireEnabled(dir: string): void {
    const enabled = this.words(`${dir}/cgroup.subtree_control`);
    const missing = V2_CONTROLLERS.filter((c) => !enabled.includes(c));
    if (missing.length) {
      throw new CgroupError('CGROUP_UNSUPPORTED', `${dir}/cgroup.subtree_control`, `controllers ${missing.join(', ')} are not enabled for children of a cgroup faasbox did not create`, {
        hint: `enable them there (echo "+memory +cpu +pids" > ${dir}/cgroup.subtree_control) or choose a FAASBOX_CGROUP_ROOT directly below the hierarchy root`,
      });
    }
  }

  create(name: string, limits: CgroupLimits, retried = false): CgroupV2Group {
    checkName(name, this.root);
    if (rootRaced(() => this.ensureRoot(), retried)) return this.create(name, limits, true);
    const dir = `${this.rootDir}/${name}`;
    try {
      this.fs.mkdir(dir);
    } catch (err) {
      // The root was removed between ensureRoot and here (another engine found it empty): once more.
      if (errnoOf(err) === 'ENOENT' && !retried) return this.create(name, limits, true);
      if (errnoOf(err) === 'EEXIST') throw new CgroupError('CGROUP_EXISTS', dir, `cgroup ${name} already exists`);
      throw new CgroupError('CGROUP_IO', dir, `cannot create cgroup ${name}`, { cause: err });
    }
    const group = new CgroupV2Group(this.fs, name, dir);
    group.assume({ cpuBurstUs: 0 });
    try {
      group.setLimits(limits);
    } catch (err) {
      try {
        this.fs.rmdir(dir);
      } catch {
        // The original error matters more; gc removes what is left.
      }
      throw err;
    }
    return group;
  }

  open(name: string): CgroupV2Group | undefined {
    checkName(name, this.root, true);
    const dir = `${this.rootDir}/${name}`;
    return this.fs.exists(dir) ? new CgroupV2Group(this.fs, name, dir) : undefined;
  }

  list(): string[] {
    return this.fs.dirs(this.rootDir).filter((n) => n !== WORKER_LEAF).sort();
  }

  /** Removes the root only: parents it created stay (harmless empty cgroups). */
  removeRoot(opts: { parent?: boolean } = {}): void {
    removeIfEmpty(this.fs, this.rootDir);
    if (opts.parent && path.posix.dirname(this.root) !== '/') removeIfEmpty(this.fs, path.posix.dirname(this.rootDir));
  }

  rootCpuUsec(): number | undefined {
    try {
      const usec = /usage_usec (\d+)/.exec(this.fs.read(`${this.rootDir}/cpu.stat`))?.[1];
      return usec === undefined ? undefined : Number(usec);
    } catch {
      return undefined;
    }
  }
}

export class CgroupV2Group extends BaseCgroup {
  /**
   * memory.peak is reset per open file (Linux 6.12+): after "reset" is written through
   * a file descriptor, reads through that same descriptor report the peak since then.
   * So the descriptor that reset it is kept and read from until destroy().
   */
  private peakFile: CgroupFile | undefined;

  get cloneInto(): string {
    return this.dir;
  }

  constructor(
    fs: CgroupFs,
    name: string,
    private readonly dir: string,
  ) {
    super(fs, name, [dir]);
  }

  protected writeLimits(l: CgroupLimits): void {
    const d = this.dir;
    if (l.memoryBytes !== undefined) {
      this.writeFile(`${d}/memory.max`, limitValue(l.memoryBytes, `${d}/memory.max`, 'max'));
      // Absent when the kernel has no swap support (CONFIG_SWAP off): nothing to turn off then.
      this.writeFile(`${d}/memory.swap.max`, '0', { optional: true });
    }
    this.writeCpuBandwidth(l, `${d}/cpu.max.burst`, () => {
      // cpu.max holds "$QUOTA $PERIOD"; a half given keeps the other half in force.
      const [quota, period] = (this.fs.exists(`${d}/cpu.max`) ? this.fs.read(`${d}/cpu.max`) : 'max 100000').trim().split(/\s+/);
      const q = l.cpuQuotaUs !== undefined ? limitValue(l.cpuQuotaUs, `${d}/cpu.max`, 'max') : quota;
      const p = l.cpuPeriodUs !== undefined ? limitValue(l.cpuPeriodUs, `${d}/cpu.max`) : period;
      this.writeFile(`${d}/cpu.max`, `${q} ${p}`);
    });
    if (l.pids !== undefined) this.writeFile(`${d}/pids.max`, limitValue(l.pids, `${d}/pids.max`, 'max'));
    if (l.io !== undefined) {
      const file = `${d}/io.max`;
      if (!this.fs.exists(file)) throw blkioUnsupported(file, 'the io controller is not enabled for this cgroup');
      this.writeFile(file, ioMaxLine(l.io, file));
    }
  }

  stats(): CgroupStats {
    const d = this.dir;
    const cpu = this.readKeyed(`${d}/cpu.stat`);
    const events = this.readKeyed(`${d}/memory.events`);
    const current = this.readNumber(`${d}/memory.current`);
    return {
      cpuUsageUsec: cpu.usage_usec ?? 0,
      userUsec: cpu.user_usec ?? 0,
      systemUsec: cpu.system_usec ?? 0,
      memoryCurrentBytes: current,
      // Before Linux 5.19 there is no memory.peak: the current usage is the best there is.
      memoryPeakBytes: this.readPeak() ?? current,
      oomKills: events.oom_kill ?? 0,
      pidsCurrent: this.readNumber(`${d}/pids.current`),
      throttledPeriods: cpu.nr_throttled ?? 0,
      throttledUsec: cpu.throttled_usec ?? 0,
      ...this.ioUsage(),
    };
  }

  /** Read before and after every invocation: kept open, as cpu.stat is. No io controller here: zeros. */
  ioUsage(): { ioReadBytes: number; ioWriteBytes: number } {
    const text = this.readKept(`${this.dir}/io.stat`);
    return text === undefined ? { ioReadBytes: 0, ioWriteBytes: 0 } : parseIoStat(text);
  }

  usage(): Pick<CgroupStats, 'cpuUsageUsec' | 'memoryPeakBytes'> {
    const stat = `${this.dir}/cpu.stat`;
    const kept = this.readKept(stat);
    const cpu = kept === undefined ? this.readKeyed(stat) : parseKeyed(kept);
    return { cpuUsageUsec: cpu.usage_usec ?? 0, memoryPeakBytes: this.readPeak() ?? this.readNumber(`${this.dir}/memory.current`) };
  }

  private readPeak(): number | undefined {
    const text = this.peakFile ? this.peakFile.read() : this.fs.exists(`${this.dir}/memory.peak`) ? this.fs.read(`${this.dir}/memory.peak`) : undefined;
    const v = Number(text?.trim());
    return text === undefined || Number.isNaN(v) ? undefined : v;
  }

  /**
   * Where memory.peak cannot be reset (read-only before Linux 6.12, absent before 5.19)
   * this does nothing, and memoryPeakBytes stays the peak since the cgroup was made: an
   * upper bound of the invocation's peak, never an underestimate.
   */
  resetPeak(): void {
    const path = `${this.dir}/memory.peak`;
    try {
      this.peakFile ??= this.fs.open(path);
      this.peakFile.write('reset\n');
    } catch (err) {
      this.closePeak();
      if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'EACCES' && errnoOf(err) !== 'EINVAL') {
        throw new CgroupError('CGROUP_IO', path, 'cannot reset the memory peak', { cause: err });
      }
    }
  }

  private closePeak(): void {
    try {
      this.peakFile?.close();
    } finally {
      this.peakFile = undefined;
    }
  }

  protected writeFreeze(frozen: boolean): void {
    this.writeFreezer(`${this.dir}/cgroup.freeze`, frozen ? '1' : '0');
  }

  protected isFrozen(): boolean {
    // cgroup.freeze says what was asked; "frozen 1" in cgroup.events comes once every
    // task has actually stopped (an empty cgroup is frozen at once).
    return /^frozen 1$/m.test(this.fs.read(`${this.dir}/cgroup.events`));
  }

  protected async killAll(): Promise<void> {
    const kill = `${this.dir}/cgroup.kill`;
    if (this.fs.exists(kill)) {
      // Linux 5.14+: the kernel kills every member, forks in flight included.
      this.writeFile(kill, '1');
      return;
    }
    // Older kernels: freeze (no forks while frozen), kill the listed members, thaw.
    const freeze = `${this.dir}/cgroup.freeze`;
    this.writeFile(freeze, '1');
    try {
      await waitUntil(() => /^frozen 1$/m.test(this.fs.read(`${this.dir}/cgroup.events`)), 1000);
      sigkillAll(this.pids());
    } finally {
      this.thaw();
    }
  }

  override async destroy(): Promise<void> {
    this.closePeak();
    await super.destroy();
  }
}
