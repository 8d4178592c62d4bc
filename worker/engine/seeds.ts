/**
 * Seeds (cgroup v1): container inits made ahead of demand, each already in a cgroup of
 * its own and in fresh PID, UTS, IPC and network namespaces, parked until a create takes
 * one (protocol in native/protocol.h). What they take off the start path: the v1
 * cgroup.procs write (a migration, which waits for an RCU grace period whenever none
 * happened recently: 5-30 ms for ~1 start in 5 here), the cgroup mkdirs, and the
 * network namespace (~0.4 ms in clone, more in its asynchronous teardown).
 *
 * A create that takes a seed renames the seed's cgroup to the container's id and writes
 * the limits that differ from the seed's, before any of the container's code runs; the
 * seed then copies the mount namespace (the rootfs is mounted by then) and goes on as
 * any container init. Seeds are named seed-<owner pid>-<owner start time>-<n> under the
 * engine's cgroup root, so gc removes those whose engine is gone.
 */
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import type { Cgroup, CgroupDriver, CgroupLimits } from './cgroups/index.js';
import { CLONE_NEWCGROUP, CLONE_NEWNS } from './config.js';
import { readLines } from './lines.js';
import { ConfigWriter, parseSyncLine, Rec, type SyncMessage } from './native/protocol.js';
import { isAlive, selfOwner } from './state.js';
import { socketpair, SOCK_SEQPACKET } from './sys/fdpass.js';
import type { ZygoteLauncher } from './zygote.js';

/** The namespaces a seed is cloned with: the container's, less those made at take time. */
export const seedCloneFlags = (cloneFlags: number): number => cloneFlags & ~(CLONE_NEWNS | CLONE_NEWCGROUP);

const SEED_NAME = /^seed-(\d+)-(\d+)-\d+$/;

/** Whether a cgroup name is a seed's whose engine still runs (gc leaves those alone). */
export function isLiveSeed(name: string): boolean {
  const m = SEED_NAME.exec(name);
  return !!m && isAlive({ pid: Number(m[1]), startTime: m[2]! });
}

/** One parked seed: its cgroup, its sync socket (the container's, once taken) and control socket. */
export class Seed {
  pid = 0;
  ready = false;
  dead = false;
  private buffered: SyncMessage[] = [];
  private onMessage: ((m: SyncMessage) => void) | undefined;

  constructor(
    readonly name: string,
    readonly cgroup: Cgroup,
    readonly cloneFlags: number,
    readonly limits: CgroupLimits,
    readonly sync: net.Socket,
    /** The worker's end of the control socket; -1 once handed over or dropped. */
    public control: number,
    onGone: (s: Seed) => void,
  ) {
    readLines(sync, (line) => {
      const m = parseSyncLine(line);
      if (m.kind === 'pid') this.pid = m.pid;
      if (m.kind === 'seeded') this.ready = true;
      if (this.onMessage) this.onMessage(m);
      else this.buffered.push(m);
    });
    sync.on('error', () => {});
    sync.on('close', () => {
      this.dead = true;
      if (!this.onMessage) onGone(this);
    });
  }

  /** The container's process takes over the sync socket: earlier messages first. */
  adopt(onMessage: (m: SyncMessage) => void): void {
    this.onMessage = onMessage;
    for (const m of this.buffered.splice(0)) onMessage(m);
  }

  closeControl(): void {
    if (this.control >= 0) {
      closeSync(this.control);
      this.control = -1;
    }
  }
}

/** Limit values that undo a seed's limit the container did not ask for. */
const UNSET: Required<Omit<CgroupLimits, 'io'>> = { memoryBytes: -1, cpuQuotaUs: -1, cpuPeriodUs: 100_000, cpuBurstUs: 0, pids: -1 };

/** The writes that turn a seed's limits into the container's. */
export function limitsDiff(seed: CgroupLimits, want: CgroupLimits): CgroupLimits {
  const out: CgroupLimits = {};
  for (const k of Object.keys(UNSET) as (keyof typeof UNSET)[]) {
    if (seed[k] === want[k]) continue;
    const v = want[k] ?? UNSET[k];
    if (seed[k] !== v) out[k] = v;
  }
  // A seed has no block I/O limits: the container's, if any, are written.
  if (want.io) out.io = want.io;
  // The kernel checks a quota against the period: a new period goes with its quota.
  if (out.cpuPeriodUs !== undefined && out.cpuQuotaUs === undefined && want.cpuQuotaUs !== undefined) out.cpuQuotaUs = want.cpuQuotaUs;
  // A new quota resets the burst first (burst <= quota): the wanted burst goes with it.
  if ((out.cpuPeriodUs !== undefined || out.cpuQuotaUs !== undefined) && out.cpuBurstUs === undefined && want.cpuBurstUs) out.cpuBurstUs = want.cpuBurstUs;
  return out;
}

export interface SeedPoolOptions {
  /** Seeds kept parked. */
  size: number;
}

export class SeedPool {
  private readonly seeds = new Set<Seed>();
  private template: { cloneFlags: number; limits: CgroupLimits } | undefined;
  private creates = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;

  constructor(
    private readonly cgroups: Pick<CgroupDriver, 'create'>,
    private readonly zygote: ZygoteLauncher,
    private readonly opts: SeedPoolOptions,
  ) {}

  /** Parked seeds (tests). */
  get parked(): readonly Seed[] {
    return [...this.seeds];
  }

  /** Seeds the pool keeps parked once it has refilled. */
  get size(): number {
    return this.opts.size;
  }

  /**
   * A ready seed with the container's namespaces, taken out of the pool; undefined if none.
   * Every create also tells the pool what to make next: seeds like the latest request,
   * from the second create on (a one-shot engine, such as a CLI command, makes none).
   */
  take(cloneFlags: number, limits: CgroupLimits): Seed | undefined {
    const flags = seedCloneFlags(cloneFlags);
    this.template = { cloneFlags: flags, limits };
    let found: Seed | undefined;
    for (const s of this.seeds) {
      if (s.ready && !s.dead && s.control >= 0 && s.cloneFlags === flags) {
        found = s;
        break;
      }
    }
    if (found) this.seeds.delete(found);
    this.creates++;
    this.inFlight++;
    return found;
  }

  /** The create that called take() is done (ready or failed): refill once none is under way. */
  settled(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (this.creates >= 2 && this.inFlight === 0) this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    // Only when no create is under way: the refill's mkdirs (synchronous, ~0.4 ms) and
    // its fork and clone would otherwise sit on a start path.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fill();
    }, 0);
    this.timer.unref();
  }

  private fill(): void {
    if (this.closed || !this.template) return;
    while (this.seeds.size < this.opts.size) {
      try {
        this.seeds.add(this.make(this.template.cloneFlags, this.template.limits));
      } catch {
        return; // the next create tries again; creates do not need seeds
      }
    }
  }

  private make(cloneFlags: number, limits: CgroupLimits): Seed {
    const owner = selfOwner();
    const name = `seed-${owner.pid}-${owner.startTime}-${this.seq++}`;
    const cgroup = this.cgroups.create(name, limits);
    const fds: number[] = [];
    let mine: number[] = [];
    try {
      const devNull = openSync('/dev/null', 'r+');
      fds.push(devNull);
      const [mySync, theirSync] = socketpair();
      const [myControl, theirControl] = socketpair(SOCK_SEQPACKET);
      mine = [mySync, myControl];
      fds.push(theirSync, theirControl);
      const config = new ConfigWriter()
        .text(Rec.SEED, 1)
        .text(Rec.CLONE_FLAGS, cloneFlags)
        .text(Rec.EXTRA_FDS, 1);
      for (const p of cgroup.procsFiles) config.text(Rec.CGROUP_PROCS, p);
      this.zygote.launch(config.toBuffer(), [devNull, devNull, devNull, theirSync, theirControl]);
      const sync = new net.Socket({ fd: mySync, readable: true, writable: true });
      sync.unref(); // a parked seed keeps no worker alive
      return new Seed(name, cgroup, cloneFlags, limits, sync, myControl, (s) => this.gone(s));
    } catch (err) {
      for (const fd of mine) closeSync(fd);
      void cgroup.destroy().catch(() => {});
      throw err;
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }

  /** A parked seed died (killed, or its cgroup collected): forget it and its cgroup. */
  private gone(s: Seed): void {
    if (!this.seeds.delete(s)) return;
    s.closeControl();
    void s.cgroup.destroy().catch(() => {});
  }

  /**
   * Ends every parked seed and removes its cgroup (engine close, gc of everything). A
   * later take refills only if the pool is open.
   */
  async drain(opts: { close?: boolean } = {}): Promise<void> {
    if (opts.close) this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const all = [...this.seeds];
    this.seeds.clear();
    await Promise.all(
      all.map(async (s) => {
        s.closeControl(); // EOF: the seed exits; destroy() kills it if it has not yet
        await s.cgroup.destroy().catch(() => {});
        s.sync.destroy();
      }),
    );
  }
}
