import type { Cgroup, CgroupLimits, CgroupStats } from './index.js';
import type { CgroupFs } from './fs.js';
import { CgroupError } from './errors.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** "key value" lines (cpu.stat, memory.events, memory.oom_control) -> numbers. */
export function parseKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && v !== '') out[k] = Number(v);
  }
  return out;
}

export function parsePids(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

/** What v1 and v2 share: process listing, the kill-and-wait loop, removal with retries. */
export abstract class BaseCgroup implements Cgroup {
  constructor(
    protected readonly fs: CgroupFs,
    readonly name: string,
    /** Every directory of this cgroup (one per v1 hierarchy; one for v2). */
    protected readonly dirs: string[],
  ) {}

  get procsFiles(): string[] {
    return this.dirs.map((d) => `${d}/cgroup.procs`);
  }

  abstract setLimits(l: CgroupLimits): void;
  abstract stats(): CgroupStats;
  abstract resetPeak(): void;
  /** Signals every member once, with forks frozen out of the race. */
  protected abstract killAll(): Promise<void>;
  /** The directory whose cgroup.procs lists the members. */
  protected abstract get primary(): string;

  pids(): number[] {
    try {
      return parsePids(this.fs.read(`${this.primary}/cgroup.procs`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CgroupError('CGROUP_IO', this.primary, 'cannot list processes', { cause: err });
    }
  }

  async kill(): Promise<void> {
    if (this.pids().length === 0) return;
    await this.killAll();
    // SIGKILLed processes leave the cgroup only once the kernel has torn them down.
    for (let i = 0; this.pids().length > 0; i++) {
      if (i > 0 && i % 100 === 0) await this.killAll();
      if (i > 2000) throw new CgroupError('CGROUP_BUSY', this.primary, 'processes survived SIGKILL for 10 s', { hint: 'a process may be stuck in uninterruptible sleep (D state)' });
      await sleep(5);
    }
  }

  async destroy(): Promise<void> {
    await this.kill();
    for (const dir of this.dirs) {
      for (let i = 0; ; i++) {
        try {
          this.fs.rmdir(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          // EBUSY: the last exiting task may still be detaching from the cgroup.
          if (code === 'EBUSY' && i < 200) {
            await sleep(5);
            continue;
          }
          throw new CgroupError('CGROUP_BUSY', dir, 'cannot remove cgroup', { cause: err, hint: 'processes may still be in it' });
        }
      }
    }
  }

  protected writeFile(path: string, value: string, optional = false): void {
    try {
      this.fs.write(path, value);
    } catch (err) {
      if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new CgroupError('CGROUP_IO', path, `cannot write "${value}"`, { cause: err });
    }
  }

  protected readNumber(path: string, fallback = 0): number {
    try {
      const v = this.fs.read(path).trim();
      return v === 'max' ? Infinity : Number(v);
    } catch {
      return fallback;
    }
  }

  protected readKeyed(path: string): Record<string, number> {
    try {
      return parseKeyed(this.fs.read(path));
    } catch {
      return {};
    }
  }
}

/** Kills each pid; a pid that already exited is fine. */
export function sigkillAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
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
