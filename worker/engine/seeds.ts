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
 *
 * Bridge seeds (once a bridge container was created twice): their network namespace also
 * gets eth0, its address and route while parked (network.ts prepare(), the lease held
 * under the seed's name), so that a bridge create that takes one only adds its set
 * elements and DNS files. A none create never takes a bridge seed, nor the reverse.
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
import type { Attachment } from './network/network.js';

export type SeedNetwork = 'none' | 'bridge';

/** How a bridge seed's network is made ahead and given back (the engine's BridgeNetwork). */
export interface SeedNetworking {
  prepare(o: { id: string; pid: number }): Attachment;
  detach(att: Attachment): Promise<void>;
}

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
  /** A bridge seed's eth0, address and lease, made while parked; moved to the container that takes it. */
  attachment: Attachment | undefined;
  /** Called once when the seed is parked (its pid known, its namespaces made). */
  onReady: (() => void) | undefined;
  network: SeedNetwork = 'none';

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
      // Parked, with its pid known (the monitor's pid message and init's may come in either order).
      if (this.ready && this.pid > 0 && this.onReady) {
        const ready = this.onReady;
        this.onReady = undefined;
        ready();
      }
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
  /** Seeds kept parked (of each network mode asked for). */
  size: number;
  /** Bridge seeds' networking; absent or returning undefined: no bridge seeds. */
  networking?: () => SeedNetworking | undefined;
}

export class SeedPool {
  private readonly seeds = new Set<Seed>();
  private readonly templates = new Map<SeedNetwork, { cloneFlags: number; limits: CgroupLimits }>();
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
  take(cloneFlags: number, limits: CgroupLimits, network: SeedNetwork = 'none'): Seed | undefined {
    const flags = seedCloneFlags(cloneFlags);
    // A bridge seed is made only where bridge networking works.
    if (network === 'none' || this.opts.networking?.()) this.templates.set(network, { cloneFlags: flags, limits });
    let found: Seed | undefined;
    for (const s of this.seeds) {
      if (s.ready && !s.dead && s.control >= 0 && s.cloneFlags === flags && s.network === network && (network === 'none' || s.attachment)) {
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
    if (this.closed) return;
    for (const [network, t] of this.templates) {
      let have = [...this.seeds].filter((s) => s.network === network).length;
      while (have < this.opts.size) {
        try {
          this.seeds.add(this.make(t.cloneFlags, t.limits, network));
          have++;
        } catch {
          break; // the next create tries again; creates do not need seeds
        }
      }
    }
  }

  private make(cloneFlags: number, limits: CgroupLimits, network: SeedNetwork = 'none'): Seed {
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
      const seed = new Seed(name, cgroup, cloneFlags, limits, sync, myControl, (s) => this.gone(s));
      seed.network = network;
      if (network === 'bridge') seed.onReady = () => this.prepareNetwork(seed);
      return seed;
    } catch (err) {
      for (const fd of mine) closeSync(fd);
      void cgroup.destroy().catch(() => {});
      throw err;
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }

  /** A bridge seed just parked: its eth0, address and route, now (in the background, as its making). */
  private prepareNetwork(seed: Seed): void {
    const net = this.opts.networking?.();
    if (!net || this.closed || !this.seeds.has(seed) || seed.dead) return;
    try {
      seed.attachment = net.prepare({ id: seed.name, pid: seed.pid });
    } catch {
      // Not usable as a bridge seed: it goes, and the next create makes another.
      this.gone(seed, true);
    }
  }

  /** Gives a seed's network back (its veth and lease), once. */
  private releaseNetwork(s: Seed): Promise<void> {
    const att = s.attachment;
    s.attachment = undefined;
    const net = this.opts.networking?.();
    return att && net ? net.detach(att).catch(() => {}) : Promise.resolve();
  }

  /** A parked seed died (killed, or its cgroup collected), or is of no use: forget it, its network and its cgroup. */
  private gone(s: Seed, kill = false): void {
    if (!this.seeds.delete(s)) return;
    s.closeControl();
    if (kill) s.sync.destroy();
    void this.releaseNetwork(s);
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
        // Its veth and lease first, explicitly: not left to the dead namespace's asynchronous teardown.
        await this.releaseNetwork(s);
        s.closeControl(); // EOF: the seed exits; destroy() kills it if it has not yet
        await s.cgroup.destroy().catch(() => {});
        s.sync.destroy();
      }),
    );
  }
}
