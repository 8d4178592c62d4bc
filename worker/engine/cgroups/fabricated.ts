/**
 * Fabricated cgroupfs trees for unit tests: a temp dir laid out like a v1 or v2 mount,
 * and a CgroupFs over it that plays the kernel's part where a plain file would not
 * (controller files appear on mkdir, subtree_control merges "+x" writes, memsw may not
 * fall below the memory limit, cgroup.kill and the freezers act on real pids, dead
 * pids leave cgroup.procs). Every successful write is recorded, relative to the tree.
 * Test support only; not exported from index.ts.
 */
import { mkdtempSync, rmSync, writeFileSync, readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { realFs, type CgroupFile, type CgroupFs } from './fs.js';

const MAX_V1 = '9223372036854771712';

export interface FabricatedOptions {
  /** v1: memory.memsw.* files (swap accounting on). Default true. */
  memsw?: boolean;
  /** v2: cgroup.kill (Linux 5.14+). Default true. */
  cgroupKill?: boolean;
  /** v2: memory.peak accepts "reset" (Linux 6.12+). Default true. */
  peakWritable?: boolean;
  /** v2: memory.swap.max exists (CONFIG_SWAP). Default true. */
  swap?: boolean;
  /**
   * The freezers stop tasks only when the test says so (tree.set): until then v1 reads
   * FREEZING and v2's cgroup.events "frozen 0", as the kernel does while a task runs on.
   */
  freezeLags?: boolean;
  /** v1: mount points (below the tree) -> controllers. Default: cpu and cpuacct co-mounted. */
  v1Mounts?: Record<string, string[]>;
}

export interface Write {
  path: string;
  value: string;
}

function errno(code: string, p: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${p}`), { code });
}

/**
 * As the kernel lists members: a task leaves cgroup.procs when it exits, before its
 * parent reaps it, so a zombie is not alive here. (Counting zombies made the kill tests
 * depend on how soon Node reaps its children: over 500 ms in a TCG VM, and kill() then
 * ran a second round.)
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export class FabricatedCgroupfs {
  readonly writes: Write[] = [];
  /** Relative path (or basename) -> errno that a write to it fails with. */
  readonly failWrites = new Map<string, string>();
  /** Relative path -> how many times memory.peak was reset through an open handle. */
  readonly peakResets = new Map<string, number>();
  readonly fs: CgroupFs;
  /** /proc/self/mountinfo as the kernel would show it for this tree (v1). */
  readonly mountinfo: string;

  private constructor(
    readonly version: 1 | 2,
    readonly mountRoot: string,
    private readonly opts: FabricatedOptions,
    private readonly v1Mounts: Record<string, string[]>,
  ) {
    this.fs = this.makeFs();
    this.mountinfo = Object.entries(v1Mounts)
      .map(([dir, ctrls], i) => `${40 + i} 31 0:${29 + i} / ${path.join(mountRoot, dir).replace(/ /g, '\\040')} rw,nosuid,nodev,noexec,relatime shared:${9 + i} - cgroup cgroup rw,${ctrls.join(',')}`)
      .concat(['25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw', `31 25 0:28 / ${mountRoot} rw shared:8 - tmpfs tmpfs rw,mode=755`])
      .join('\n');
  }

  static v1(opts: FabricatedOptions = {}): FabricatedCgroupfs {
    const mounts = opts.v1Mounts ?? { memory: ['memory'], 'cpu,cpuacct': ['cpu', 'cpuacct'], pids: ['pids'], freezer: ['freezer'], devices: ['devices'] };
    const t = new FabricatedCgroupfs(1, mkdtempSync(path.join(tmpdir(), 'fabricated-cgroup-v1-')), opts, mounts);
    for (const dir of Object.keys(mounts)) {
      mkdirSync(path.join(t.mountRoot, dir));
      t.populate(path.join(t.mountRoot, dir));
    }
    return t;
  }

  static v2(opts: FabricatedOptions = {}): FabricatedCgroupfs {
    const t = new FabricatedCgroupfs(2, mkdtempSync(path.join(tmpdir(), 'fabricated-cgroup-v2-')), opts, {});
    const r = t.mountRoot;
    writeFileSync(`${r}/cgroup.controllers`, 'cpuset cpu io memory hugetlb pids rdma misc\n');
    writeFileSync(`${r}/cgroup.subtree_control`, '\n');
    writeFileSync(`${r}/cgroup.procs`, '1\n');
    writeFileSync(`${r}/cpu.stat`, 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n');
    return t;
  }

  abs(rel: string): string {
    return path.join(this.mountRoot, rel);
  }

  rel(abs: string): string {
    return path.relative(this.mountRoot, abs);
  }

  /** Overwrites a file as the kernel would update it (usage counters, events). */
  set(rel: string, content: string): void {
    writeFileSync(this.abs(rel), content);
  }

  read(rel: string): string {
    return realFs.read(this.abs(rel));
  }

  writesTo(suffix: string): string[] {
    return this.writes.filter((w) => w.path.endsWith(suffix)).map((w) => w.value);
  }

  cleanup(): void {
    rmSync(this.mountRoot, { recursive: true, force: true });
  }

  /** The files the kernel offers in a fresh cgroup at dir. */
  private populate(dir: string): void {
    const files: Record<string, string> = { 'cgroup.procs': '' };
    if (this.version === 1) {
      const top = this.rel(dir).split(path.sep)[0]!;
      for (const c of this.v1Mounts[top] ?? []) Object.assign(files, this.v1Files(c));
    } else {
      const parentControl = realFs.read(path.join(path.dirname(dir), 'cgroup.subtree_control')).trim().split(/\s+/).filter(Boolean);
      Object.assign(files, {
        'cgroup.controllers': `${parentControl.join(' ')}\n`,
        'cgroup.subtree_control': '\n',
        'cgroup.events': 'populated 0\nfrozen 0\n',
        'cgroup.freeze': '0\n',
        'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
      });
      if (this.opts.cgroupKill ?? true) files['cgroup.kill'] = '';
      if (parentControl.includes('memory')) {
        Object.assign(files, {
          'memory.max': 'max\n',
          'memory.current': '0\n',
          'memory.peak': '0\n',
          'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
        });
        if (this.opts.swap ?? true) files['memory.swap.max'] = 'max\n';
      }
      if (parentControl.includes('cpu')) {
        files['cpu.max'] = 'max 100000\n';
        files['cpu.max.burst'] = '0\n';
        files['cpu.stat'] = 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n';
      }
      if (parentControl.includes('pids')) Object.assign(files, { 'pids.max': 'max\n', 'pids.current': '0\n' });
      if (parentControl.includes('io')) Object.assign(files, { 'io.max': '', 'io.stat': '' });
    }
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  }

  private v1Files(controller: string): Record<string, string> {
    switch (controller) {
      case 'memory': {
        const files: Record<string, string> = {
          'memory.limit_in_bytes': `${MAX_V1}\n`,
          'memory.usage_in_bytes': '0\n',
          'memory.max_usage_in_bytes': '0\n',
          'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
          'memory.swappiness': '60\n',
        };
        if (this.opts.memsw ?? true) Object.assign(files, { 'memory.memsw.limit_in_bytes': `${MAX_V1}\n`, 'memory.memsw.usage_in_bytes': '0\n' });
        return files;
      }
      case 'cpu':
        return { 'cpu.cfs_period_us': '100000\n', 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_burst_us': '0\n', 'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n' };
      case 'cpuacct':
        return { 'cpuacct.usage': '0\n', 'cpuacct.stat': 'user 0\nsystem 0\n' };
      case 'pids':
        return { 'pids.max': 'max\n', 'pids.current': '0\n' };
      case 'freezer':
        return { 'freezer.state': 'THAWED\n' };
      case 'blkio':
        return Object.fromEntries(
          ['read_bps_device', 'write_bps_device', 'read_iops_device', 'write_iops_device', 'io_service_bytes'].map((f) => [`blkio.throttle.${f}`, f === 'io_service_bytes' ? 'Total 0\n' : '']),
        );
      default:
        return {};
    }
  }

  private migrate(pid: string, to: string): void {
    const walk = (dir: string): void => {
      const procs = path.join(dir, 'cgroup.procs');
      const pids = realFs.read(procs).split('\n').filter(Boolean);
      if (procs === to) pids.includes(pid) || pids.push(pid);
      else if (pids.includes(pid)) pids.splice(pids.indexOf(pid), 1);
      writeFileSync(procs, pids.map((n) => `${n}\n`).join(''));
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(dir, e.name));
    };
    walk(this.mountRoot);
  }

  private livePids(dir: string): number[] {
    return realFs
      .read(path.join(dir, 'cgroup.procs'))
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter(alive);
  }

  /** The kernel's side of a write; throws the errno it would return. */
  private kernelWrite(p: string, value: string): void {
    const rel = this.rel(p);
    const fail = this.failWrites.get(rel) ?? this.failWrites.get(path.basename(p));
    if (fail) throw errno(fail, p);
    const dir = path.dirname(p);
    const num = (v: string) => BigInt(v.trim() === '-1' ? MAX_V1 : v.trim());
    switch (path.basename(p)) {
      case 'memory.limit_in_bytes': {
        const memsw = path.join(dir, 'memory.memsw.limit_in_bytes');
        if (realFs.exists(memsw) && num(value) > num(realFs.read(memsw))) throw errno('EINVAL', p);
        break;
      }
      case 'memory.memsw.limit_in_bytes':
        if (num(value) < num(realFs.read(path.join(dir, 'memory.limit_in_bytes')))) throw errno('EINVAL', p);
        break;
      case 'cgroup.subtree_control': {
        // The no-internal-processes rule (v2): only the root may hand controllers down while it has members.
        if (dir !== this.mountRoot && this.livePids(dir).length > 0 && value.includes('+')) throw errno('EBUSY', p);
        const set = new Set(realFs.read(p).trim().split(/\s+/).filter(Boolean));
        const available = realFs.read(path.join(dir, 'cgroup.controllers')).trim().split(/\s+/);
        for (const w of value.trim().split(/\s+/)) {
          if (!available.includes(w.slice(1))) throw errno('ENOENT', p);
          if (w.startsWith('+')) set.add(w.slice(1));
          else set.delete(w.slice(1));
        }
        realFs.write(p, `${[...set].join(' ')}\n`);
        return;
      }
      case 'cgroup.procs':
        // A migration: the process leaves whichever cgroup of this hierarchy held it.
        if (this.version === 2) this.migrate(value.trim(), p);
        return;
      case 'cgroup.kill':
        for (const pid of this.livePids(dir)) process.kill(pid, 'SIGKILL');
        return;
      case 'cgroup.freeze':
        if (!(this.opts.freezeLags && value.trim() === '1')) realFs.write(path.join(dir, 'cgroup.events'), `populated 1\nfrozen ${value.trim()}\n`);
        break;
      case 'freezer.state':
        for (const pid of this.livePids(dir)) process.kill(pid, value.trim() === 'FROZEN' ? 'SIGSTOP' : 'SIGCONT');
        if (this.opts.freezeLags && value.trim() === 'FROZEN') return realFs.write(p, 'FREEZING\n');
        break;
    }
    realFs.write(p, value.endsWith('\n') ? value : `${value}\n`);
  }

  private makeFs(): CgroupFs {
    const record = (p: string, value: string) => this.writes.push({ path: this.rel(p), value });
    return {
      read: (p) => {
        const text = realFs.read(p);
        // Exited tasks leave the cgroup: keep only pids that still run.
        return path.basename(p) === 'cgroup.procs' ? this.livePids(path.dirname(p)).map((n) => `${n}\n`).join('') : text;
      },
      write: (p, value) => {
        this.kernelWrite(p, value);
        record(p, value);
      },
      open: (p): CgroupFile => {
        if (path.basename(p) === 'memory.peak' && !(this.opts.peakWritable ?? true)) throw errno('EACCES', p);
        const rel = this.rel(p);
        const inner = realFs.open(p);
        let closed = false;
        const current = () => Number(realFs.read(path.join(path.dirname(p), 'memory.current')));
        let sinceReset: number | undefined;
        return {
          // After a reset this handle sees the highest memory.current it has seen since.
          read: () => {
            if (closed) throw errno('EBADF', p);
            if (sinceReset === undefined) return inner.read();
            sinceReset = Math.max(sinceReset, current());
            return `${sinceReset}\n`;
          },
          write: (v) => {
            if (closed) throw errno('EBADF', p);
            if (path.basename(p) === 'memory.peak') {
              this.peakResets.set(rel, (this.peakResets.get(rel) ?? 0) + 1);
              sinceReset = current();
            } else this.kernelWrite(p, v);
            record(p, v);
          },
          close: () => {
            closed = true;
            inner.close();
          },
        };
      },
      mkdir: (p) => {
        realFs.mkdir(p);
        this.populate(p);
      },
      rmdir: (p) => {
        if (!realFs.exists(p)) throw errno('ENOENT', p);
        const entries = readdirSync(p, { withFileTypes: true });
        if (entries.some((e) => e.isDirectory()) || this.livePids(p).length > 0) throw errno('EBUSY', p);
        rmSync(p, { recursive: true });
      },
      rename: realFs.rename,
      exists: realFs.exists,
      dirs: realFs.dirs,
    };
  }
}
