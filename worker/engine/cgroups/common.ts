/** What v1 and v2 share: parsing, process listing, kill-and-wait, removal with retries. */
import type { Cgroup, CgroupLimits, CgroupStats, IoUsage } from './index.js';
import { sameIo } from './io.js';
import type { CgroupFile, CgroupFs } from './fs.js';
import { CgroupError, errnoOf } from './errors.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How long kill() waits for SIGKILLed tasks to leave before it gives up. */
const KILL_TIMEOUT_MS = 10_000;
/** How long destroy() retries rmdir while the last task detaches (EBUSY). */
const RMDIR_TIMEOUT_MS = 2_000;
/**
 * How long freeze() waits for every task to stop. A task in uninterruptible sleep (I/O,
 * reclaim under the memory limit) keeps the cgroup FREEZING until it wakes.
 */
const FREEZE_TIMEOUT_MS = 1_000;

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

/**
 * create() takes plain names only; open() takes anything that stays one directory below
 * the root, so that garbage collection can remove whatever list() finds there.
 */
export function checkName(name: string, where: string, forOpen = false): void {
  const ok = forOpen ? name !== '' && name !== '.' && name !== '..' && !/[/\0]/.test(name) : NAME_PATTERN.test(name);
  if (!ok) throw new CgroupError('CGROUP_INVALID_NAME', `${where}/${name}`, `invalid cgroup name "${name}"`);
}

/** "key value" lines (cpu.stat, cpuacct.stat, memory.events, memory.oom_control) -> numbers. */
export function parseKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && v !== '' && !Number.isNaN(Number(v))) out[k] = Number(v);
  }
  return out;
}

export function parsePids(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

/**
 * A limit as cgroupfs spells it: a whole number, or (negative or infinite) the
 * flavour's word for "no limit"; unlimited undefined means the file has no such word.
 */
export function limitValue(n: number, path: string, unlimited?: string): string {
  if (Number.isNaN(n) || (Number.isFinite(n) && !Number.isInteger(n)) || ((!Number.isFinite(n) || n < 0) && unlimited === undefined)) {
    throw new CgroupError('CGROUP_INVALID_LIMIT', path, `invalid limit ${n}`);
  }
  return !Number.isFinite(n) || n < 0 ? unlimited! : String(n);
}

/** Kills each pid; one that already exited is fine. */
export function sigkillAll(pids: number[]): void {
  for (const pid of pids) {
    // cgroup.procs lists a process outside the reader's PID namespace as 0, and
    // kill(0) would signal the worker's own process group.
    if (!(pid > 0)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if (errnoOf(err) !== 'ESRCH') throw err;
    }
  }
}

export async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(1);
  }
  return true;
}

const LIMIT_KEYS = ['memoryBytes', 'cpuPeriodUs', 'cpuQuotaUs', 'cpuBurstUs', 'pids'] as const;

export abstract class BaseCgroup implements Cgroup {
  constructor(
    protected readonly fs: CgroupFs,
    readonly name: string,
    /** Every directory of this cgroup: one per distinct v1 hierarchy, one for v2. */
    protected readonly dirs: string[],
  ) {}

  /**
   * The limits as last written, or as assume()d; a limit absent is unknown (an opened or
   * renamed cgroup knows none). A made cgroup's CFS burst is known to be 0: the kernel
   * refuses a quota below the burst, so one not known to be 0 is zeroed before a quota
   * changes (see writeCpuBandwidth).
   */
  protected readonly known: CgroupLimits = {};

  setLimits(l: CgroupLimits): void {
    const diff: CgroupLimits = {};
    for (const k of LIMIT_KEYS) if (l[k] !== undefined && l[k] !== this.known[k]) diff[k] = l[k];
    // A quota change takes the burst to 0 on the way (see above), and a burst kept from
    // before could exceed the new quota: it ends with the burst given, or none.
    if (diff.cpuQuotaUs !== undefined || diff.cpuPeriodUs !== undefined) diff.cpuBurstUs = l.cpuBurstUs ?? 0;
    if (l.io !== undefined && !sameIo(l.io, this.known.io)) diff.io = l.io;
    if (Object.keys(diff).length === 0) return;
    try {
      this.writeLimits(diff);
    } catch (err) {
      // Some of them may be written: none of them is known any more.
      for (const k of Object.keys(diff) as (keyof CgroupLimits)[]) delete this.known[k];
      throw err;
    }
    Object.assign(this.known, diff);
  }

  assume(l: CgroupLimits): void {
    for (const k of LIMIT_KEYS) if (l[k] !== undefined) this.known[k] = l[k];
    if (l.io !== undefined) this.known.io = l.io;
  }

  /** Writes these limits in an order the kernel accepts; the CPU bandwidth through writeCpuBandwidth. */
  protected abstract writeLimits(l: CgroupLimits): void;

  /**
   * The CFS bandwidth part of writeLimits, in the one order the kernel accepts (it checks
   * burst <= quota on every write): a burst not known to be 0 goes to 0 first, then
   * writeQuota (quota and period, in whatever files the version has), and the new burst
   * last. burstFile may be absent (kernels before 5.14): a burst is then not settable.
   */
  protected writeCpuBandwidth(l: CgroupLimits, burstFile: string, writeQuota: () => void): void {
    const quotaChanges = l.cpuQuotaUs !== undefined || l.cpuPeriodUs !== undefined;
    if (quotaChanges && this.known.cpuBurstUs !== 0) {
      this.writeFile(burstFile, '0', { optional: true });
      this.known.cpuBurstUs = 0;
    }
    if (quotaChanges) writeQuota();
    if (l.cpuBurstUs !== undefined && l.cpuBurstUs !== this.known.cpuBurstUs) this.writeFile(burstFile, String(Math.round(l.cpuBurstUs)), { optional: true });
  }

  /**
   * Files read or written on every invocation (usage before and after, the peak reset),
   * kept open: one pread or pwrite each instead of open, read, close (on v1, 5 of each per
   * warm invocation were ~6% of a busy worker's CPU). Closed by destroy().
   */
  private readonly kept = new Map<string, CgroupFile>();

  /** The text of a kept-open file; undefined when it cannot be opened or read (the plain path says why). */
  protected readKept(path: string): string | undefined {
    const f = this.keptFile(path);
    try {
      return f?.read();
    } catch {
      // A stale descriptor (the cgroup was removed or renamed away).
      this.dropKept(path);
      return undefined;
    }
  }

  /** Writes through a kept-open file; false when it cannot (the caller writes by path). */
  protected writeKept(path: string, value: string): boolean {
    const f = this.keptFile(path);
    try {
      f?.write(value);
      return f !== undefined;
    } catch {
      this.dropKept(path);
      return false;
    }
  }

  private keptFile(path: string): CgroupFile | undefined {
    let f = this.kept.get(path);
    if (!f) {
      try {
        f = this.fs.open(path);
      } catch {
        return undefined;
      }
      this.kept.set(path, f);
    }
    return f;
  }

  private dropKept(path: string): void {
    try {
      this.kept.get(path)?.close();
    } catch {
      // Closing a descriptor of a removed cgroup file: nothing to keep.
    }
    this.kept.delete(path);
  }

  get procsFiles(): string[] {
    return this.dirs.map((d) => `${d}/cgroup.procs`);
  }

  /** A freeze() asked for and not undone by thaw() since. */
  private freezeWanted = false;

  /**
   * Stops every member with the cgroup freezer; resolves true once the kernel reports the
   * whole cgroup frozen (FREEZING, or v2's "frozen 0", lasts until every task has
   * stopped), false when thaw() came first. Not frozen within timeoutMs: thawed again
   * and CGROUP_BUSY, so that the cgroup is never left half-frozen.
   */
  async freeze(timeoutMs = FREEZE_TIMEOUT_MS): Promise<boolean> {
    this.freezeWanted = true;
    this.writeFreeze(true);
    if (await waitUntil(() => !this.freezeWanted || this.isFrozen(), timeoutMs)) return this.freezeWanted;
    this.thaw();
    throw new CgroupError('CGROUP_BUSY', this.dirs[0]!, `not frozen within ${timeoutMs} ms`, {
      hint: 'a task in uninterruptible sleep (I/O, memory reclaim) holds the freezer back; it was thawed again',
    });
  }

  /** Lets every member run again; takes effect at once (nothing to wait for). */
  thaw(): void {
    this.freezeWanted = false;
    this.writeFreeze(false);
  }

  /** Writes the freezer's state (kept open: a thaw is on a warm invocation's path). */
  protected writeFreezer(path: string, value: string): void {
    if (!this.writeKept(path, value)) this.writeFile(path, value);
  }

  protected abstract writeFreeze(frozen: boolean): void;
  /** Whether every member is frozen now (the kernel's word, not what was asked). */
  protected abstract isFrozen(): boolean;

  abstract stats(): CgroupStats;
  abstract usage(): Pick<CgroupStats, 'cpuUsageUsec' | 'memoryPeakBytes'>;
  abstract resetPeak(): void;
  abstract ioUsage(): IoUsage;
  /** Signals every member once, with forks shut out of the race. */
  protected abstract killAll(): Promise<void>;

  /**
   * Members of any of the directories. On v1 the union matters: an init that died
   * halfway through joining its hierarchies is in some of them only.
   */
  pids(): number[] {
    const all = new Set<number>();
    for (const dir of this.dirs) {
      try {
        for (const pid of parsePids(this.fs.read(`${dir}/cgroup.procs`))) all.add(pid);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') continue;
        throw new CgroupError('CGROUP_IO', `${dir}/cgroup.procs`, 'cannot list processes', { cause: err });
      }
    }
    return [...all];
  }

  async kill(): Promise<void> {
    if (this.pids().length === 0) return;
    await this.killAll();
    // SIGKILLed tasks leave the cgroup only once the kernel has torn them down; a
    // second round catches any task a frozen-state timeout let slip through.
    const end = Date.now() + KILL_TIMEOUT_MS;
    let nextRound = Date.now() + 500;
    while (this.pids().length > 0) {
      if (Date.now() > end) throw new CgroupError('CGROUP_BUSY', this.dirs[0]!, `processes ${this.pids().join(', ')} survived SIGKILL for ${KILL_TIMEOUT_MS / 1000} s`);
      if (Date.now() > nextRound) {
        await this.killAll();
        nextRound = Date.now() + 500;
      }
      await sleep(2);
    }
  }

  /** kill(), then rmdir in every hierarchy. Idempotent: missing directories are fine. */
  async destroy(): Promise<void> {
    for (const path of [...this.kept.keys()]) this.dropKept(path);
    await this.kill();
    for (const dir of this.dirs) {
      const end = Date.now() + RMDIR_TIMEOUT_MS;
      for (;;) {
        try {
          this.fs.rmdir(dir);
          break;
        } catch (err) {
          const code = errnoOf(err);
          if (code === 'ENOENT') break;
          // EBUSY: the last exiting task may still be detaching from the cgroup.
          if (code === 'EBUSY' && Date.now() < end) {
            await sleep(5);
            continue;
          }
          throw new CgroupError(code === 'EBUSY' ? 'CGROUP_BUSY' : 'CGROUP_IO', dir, `cannot remove cgroup ${this.name}`, { cause: err });
        }
      }
    }
  }

  /** optional: the file may be absent in this kernel's configuration; then nothing is written. */
  protected writeFile(path: string, value: string, opts: { optional?: boolean } = {}): void {
    if (opts.optional && !this.fs.exists(path)) return;
    try {
      this.fs.write(path, value);
    } catch (err) {
      throw writeError(err, path, value);
    }
  }

  /** A number from a one-value file; "max" is Infinity; a file this kernel lacks gives fallback. */
  protected readNumber(path: string, fallback = 0): number {
    const text = this.readOptional(path);
    if (text === undefined) return fallback;
    const v = text.trim();
    return v === 'max' ? Infinity : Number(v);
  }

  protected readKeyed(path: string): Record<string, number> {
    const text = this.readOptional(path);
    return text === undefined ? {} : parseKeyed(text);
  }

  private readOptional(path: string): string | undefined {
    try {
      return this.fs.read(path);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw new CgroupError('CGROUP_IO', path, 'cannot read', { cause: err });
    }
  }
}

export function writeError(err: unknown, path: string, value: string): CgroupError {
  switch (errnoOf(err)) {
    case 'ENOENT':
      return new CgroupError('CGROUP_NOT_FOUND', path, `cannot write "${value}"`, { cause: err });
    case 'EBUSY':
      return new CgroupError('CGROUP_BUSY', path, `cannot write "${value}"`, {
        cause: err,
        hint: 'the kernel could not reclaim enough memory to go below the new limit, or the cgroup holds processes',
      });
    default:
      return new CgroupError('CGROUP_IO', path, `cannot write "${value}"`, { cause: err });
  }
}

export function removeIfEmpty(fs: CgroupFs, dir: string): void {
  try {
    fs.rmdir(dir);
  } catch (err) {
    const code = errnoOf(err);
    // Still holding cgroups (of this or another worker sharing the root), or gone already.
    if (code === 'ENOENT' || code === 'EBUSY' || code === 'ENOTEMPTY') return;
    throw new CgroupError('CGROUP_IO', dir, 'cannot remove the faasbox cgroup root', { cause: err });
  }
}

/**
 * Makes the root (ensureRoot); true when a level of it vanished meanwhile (another engine
 * removed the root it found empty), so the caller creates its cgroup once more from the
 * top. A second race, or any other failure, throws.
 */
export function rootRaced(ensureRoot: () => void, retried: boolean): boolean {
  try {
    ensureRoot();
    return false;
  } catch (err) {
    if (!retried && errnoOf((err as Error).cause) === 'ENOENT') return true;
    throw err;
  }
}
