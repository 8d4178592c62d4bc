/**
 * One container: created (everything prepared, the process parked before exec so a
 * pool can hold it), started, waited for, killed, deleted. Every resource acquired
 * during create registers its release at once; a failure unwinds them in reverse.
 */
import { closeSync, mkdirSync, rmSync } from 'node:fs';
import { MNT_DETACH, MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REMOUNT, MS_SHARED } from './sys/index.js';
import { mountsUnder } from './mounts.js';
import type { Readable, Writable, Duplex } from 'node:stream';
import type { Sys } from './sys/index.js';
import type { Cgroup, CgroupDriver, CgroupStats, IoUsage } from './cgroups/index.js';
import { encodeInitConfig, ioLimit, type ContainerConfig } from './config.js';
import type { IoLimits, ResourceLimits } from './spec.js';
import { EngineError, InvalidSpecError } from './errors.js';
import { NetworkUnavailableError } from './network/errors.js';
import { formatIpv4 } from './network/cidr.js';
import { InitProcess, type StdioSpec } from './process.js';
import type { ZygoteLauncher } from './zygote.js';
import { limitsDiff, type Seed, type SeedPool } from './seeds.js';
import { cgroupLimits, cpusOf } from './limits.js';
import { mountRootfs, unmountRootfs, type RootfsPlan } from './rootfs/overlay.js';
import { childrenOf, sigkillPending } from './proc.js';
import { assertTransition, selfOwner, writeState, type PersistedState, type Status } from './state.js';
import { idmapNamespace, type IdmapNamespaces } from './userns/namespace.js';
import { fillSlotIdmapped, idmappedBinds, leaseRange } from './userns/mounts.js';
import type { IdRange, IdRanges } from './userns/ranges.js';
import type { Attachment, BridgeNetwork, NetUsage } from './network/network.js';
import { bridgeRequestOf, type NetworkSpec } from './network/spec.js';
import { pinImage, unpinImage } from './image/pins.js';

export interface ContainerIO {
  stdio?: [StdioSpec, StdioSpec, StdioSpec];
  /** Host fds (or 'pipe' for a socketpair the worker keeps) given to the process as fds 3, 4, ... */
  extraFds?: (number | 'pipe')[];
}

export interface ExitResult {
  exitCode: number | null;
  signal: number | null;
  /** The kernel's OOM killer acted in this container's cgroup. */
  oomKilled: boolean;
  /** A faasbox-init stage failed (for example, the command does not exist). */
  error?: string;
  usage: CgroupStats;
}

export interface EngineParts {
  /** The faasbox-init binary. */
  initBin: string;
  sys: Sys;
  cgroups: CgroupDriver;
  seccomp: (mode: ContainerConfig['seccomp']) => Buffer | null;
  /** Launches monitors without forking the worker (see zygote.ts); absent: spawn each. */
  zygote?: ZygoteLauncher | undefined;
  /** Parked container inits (cgroup v1; see seeds.ts); absent: every init is made on demand. */
  seeds?: SeedPool | undefined;
  /** Host id ranges for userns containers (userns/ranges.ts). */
  userns?: IdRanges | undefined;
  /** Their idmap namespaces, kept open by range (userns/namespace.ts); absent: one made and closed per container. */
  idmaps?: IdmapNamespaces | undefined;
  /** The worker's bridge network; throws NetworkUnavailableError where there is none (bridge mode only). */
  network?: (() => BridgeNetwork) | undefined;
}

export class Container {
  private status: Status = 'creating';
  private init!: InitProcess;
  private cgroup!: Cgroup;
  private exitResult: Promise<ExitResult> | undefined;
  private persisted: PersistedState;
  /** userns mode: the host ids this container's 0..size-1 map to. */
  idRange: IdRange | undefined;
  /** Its eth0, address and policy elements (bridge mode). */
  private attachment: Attachment | undefined;

  private constructor(
    readonly config: ContainerConfig,
    private readonly parts: EngineParts,
  ) {
    this.persisted = {
      id: config.id,
      status: 'creating',
      owner: selfOwner(),
      createdAt: new Date().toISOString(),
      rootfs: config.paths.rootfs,
      args: config.args,
      cgroup: config.id,
    };
  }

  get id(): string {
    return this.config.id;
  }
  get state(): Status {
    return this.status;
  }
  /** Host pid of the container's init (pid 1 inside). */
  get pid(): number {
    return this.init.pid;
  }
  /** Its eth0's IPv4 address (bridge mode), e.g. "10.88.0.5". */
  get address(): string | undefined {
    return this.attachment ? formatIpv4(this.attachment.address) : undefined;
  }
  get stdin(): Writable | null {
    return this.init.stdin;
  }
  get stdout(): Readable | null {
    return this.init.stdout;
  }
  get stderr(): Readable | null {
    return this.init.stderr;
  }
  extraStream(i: number): Duplex {
    return this.init.extraStream(i);
  }

  static async create(config: ContainerConfig, parts: EngineParts, io: ContainerIO = {}): Promise<Container> {
    const c = new Container(config, parts);
    const undo: (() => void | Promise<void>)[] = [];
    // Before anything is made: a worker without bridge networking says so at once.
    const network = config.bridge ? bridgeNetwork(parts) : undefined;
    try {
      try {
        mkdirSync(config.paths.dir, { recursive: false });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new EngineError('CONTAINER_EXISTS', `container ${config.id} already exists (${config.paths.dir})`, { id: config.id });
        }
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          mkdirSync(config.paths.dir, { recursive: true });
        } else throw err;
      }
      undo.push(() => rmSync(config.paths.dir, { recursive: true, force: true }));
      c.persist();
      // After the dir: gc frees a lease whose container dir is gone.
      const pin = config.imagePin;
      if (pin) {
        await pinImage(pin.imagesDir, config.id, pin);
        undo.push(() => unpinImage(pin.imagesDir, config.id));
      }

      // userns mode: a range of its own, and a namespace with its maps for the idmapped mounts.
      let usernsFd: number | undefined;
      if (config.userns) {
        const ranges = parts.userns;
        const range = leaseRange(config, ranges);
        c.idRange = range;
        c.persisted.userns = { hostId: range.hostId, size: range.size };
        undo.push(() => ranges!.release(range, config.id));
        usernsFd = await (parts.idmaps ? parts.idmaps.fdFor(range) : idmapNamespace(range));
      }

      if (config.slots.length) {
        undo.push(() => void unmountAll(parts.sys, config.paths.slots));
        for (const slot of config.slots) {
          // A shared mount point of its own: what the host mounts here later propagates
          // into the container, where the slot is a read-only slave.
          mkdirSync(slot.hostPath, { recursive: true });
          parts.sys.mount(slot.hostPath, slot.hostPath, null, MS_BIND, null);
          parts.sys.mount(null, slot.hostPath, null, MS_SHARED, null);
        }
      }

      const seed = c.takeSeed();
      if (seed) {
        undo.push(() => {
          seed.closeControl();
          seed.sync.destroy();
        });
        // A bridge seed's eth0 and lease are this container's from now on.
        if (seed.attachment) {
          const att = seed.attachment;
          seed.attachment = undefined;
          c.attachment = att;
          undo.push(() => network!.detach(att));
        }
      } else {
        c.cgroup = parts.cgroups.create(config.id, config.cgroup);
      }
      undo.push(() => c.cgroup.destroy());
      // Limits are in place before the container's code runs: the seed is parked until the config arrives.
      if (seed) {
        c.cgroup.setLimits(limitsDiff(seed.limits, config.cgroup));
        // The seed's limits with that diff written over them: the container's own, and a
        // burst only if it asked for one (a seed's is 0 unless the diff set or unset it).
        c.cgroup.assume({ ...config.cgroup, cpuBurstUs: config.cgroup.cpuBurstUs ?? 0 });
      }

      let binds = config.binds;
      try {
        mountRootfs(parts.sys, { ...c.rootfsPlan(), ...(usernsFd !== undefined ? { idmap: { usernsFd, hostId: c.idRange!.hostId } } : {}) });
        undo.push(() => unmountRootfs(parts.sys, config.paths));
        if (usernsFd !== undefined && binds.some((b) => b.idmap)) {
          undo.push(() => void unmountAll(parts.sys, config.paths.binds));
          binds = idmappedBinds(config, usernsFd);
        }
      } finally {
        if (usernsFd !== undefined && !parts.idmaps) closeSync(usernsFd);
      }

      const extraFds = io.extraFds ?? [];
      c.init = new InitProcess({
        bin: parts.initBin,
        config: encodeInitConfig(config, {
          cgroupProcs: c.cgroup.procsFiles,
          ...(c.cgroup.cloneInto ? { cgroupDir: c.cgroup.cloneInto } : {}),
          seccomp: parts.seccomp(config.seccomp),
          extraFds: extraFds.length,
          binds,
        }),
        stdio: io.stdio ?? ['ignore', 'pipe', 'pipe'],
        extraFds,
        zygote: parts.zygote,
        seed,
        userns: c.idRange,
      });
      undo.push(async () => {
        c.init.signal('SIGKILL');
        await c.init.exited;
      });
      await c.init.ready();
      if (network && c.attachment) {
        // A bridge seed's link, made while it was parked: its elements and DNS files now.
        await network.adopt(c.attachment, { id: config.id, pid: c.init.pid, rootfs: config.paths.rootfs, hostname: config.hostname, request: config.bridge! });
      } else if (network) {
        // The namespace exists since init's clone; the container's code has not run yet.
        c.attachment = await network.attach({ id: config.id, pid: c.init.pid, rootfs: config.paths.rootfs, hostname: config.hostname, request: config.bridge! });
        const att = c.attachment;
        undo.push(() => network.detach(att));
      }
      c.settle();
      c.transition('created');
      c.persisted.pid = c.init.pid;
      c.persist();
      return c;
    } catch (err) {
      c.settle();
      for (const u of undo.reverse()) {
        try {
          await u();
        } catch {
          // Best effort: garbage collection finds whatever could not be undone here.
        }
      }
      c.status = 'deleted';
      throw err;
    }
  }

  private askedPool = false;

  /** Tells the seed pool this create is no longer under way (once). */
  private settle(): void {
    if (this.askedPool) this.parts.seeds?.settled();
    this.askedPool = false;
  }

  /** A parked seed whose cgroup now carries this container's name, or undefined. */
  private takeSeed(): Seed | undefined {
    const { seeds, cgroups } = this.parts;
    // A seed's namespaces are made before its container is known: none has a user namespace.
    if (this.config.userns) return undefined;
    this.askedPool = !!seeds;
    const seed = seeds?.take(this.config.cloneFlags, this.config.cgroup, this.config.bridge ? 'bridge' : 'none');
    if (!seed || !cgroups.rename) return undefined;
    try {
      this.cgroup = cgroups.rename(seed.name, this.config.id);
      return seed;
    } catch {
      seed.closeControl();
      seed.sync.destroy();
      if (seed.attachment) void this.parts.network?.().detach(seed.attachment).catch(() => {});
      void seed.cgroup.destroy().catch(() => {});
      return undefined;
    }
  }

  private rootfsPlan(): RootfsPlan {
    return { paths: this.config.paths, lowerDirs: this.config.lowerDirs, diskBytes: this.config.diskBytes, tag: `faasbox-${this.config.id}` };
  }

  private transition(to: Status): void {
    assertTransition(this.id, this.status, to);
    this.status = to;
    this.persisted.status = to;
  }

  private persist(): void {
    writeState(this.config.paths.state, this.persisted);
  }

  /** Releases the parked process: it drops privileges, installs seccomp and execs. */
  start(): void {
    // frozen -> running is a thaw's transition, not a start's.
    if (this.status === 'frozen') throw new EngineError('INVALID_STATE', `container ${this.id} is frozen; only a created container starts`, { id: this.id, from: this.status, to: 'running' });
    this.transition('running');
    this.init.start();
    this.persist();
  }

  /** Resolves when the user process has ended (pid 1 exits with it, taking the namespace along). */
  wait(): Promise<ExitResult> {
    this.exitResult ??= this.init.exited.then((ex) => {
      const usage = this.cgroup.stats();
      const result: ExitResult = {
        exitCode: ex.exitCode,
        signal: ex.signal,
        oomKilled: usage.oomKills > 0,
        ...(ex.error ? { error: ex.error } : {}),
        usage,
      };
      if (this.status === 'created' || this.status === 'running' || this.status === 'frozen') this.transition('stopped');
      this.persisted.exit = { exitCode: result.exitCode, signal: result.signal, oomKilled: result.oomKilled };
      try {
        this.persist();
      } catch {
        // deleted concurrently
      }
      return result;
    });
    return this.exitResult;
  }

  stats(): CgroupStats {
    return this.cgroup.stats();
  }

  /**
   * New limits for a running container (a pooled container takes its function's limits).
   * Those not given stay; new cpus without a cpuBurst leave no burst.
   */
  updateLimits(limits: ResourceLimits & { diskBytes?: number; io?: IoLimits }): void {
    // One conversion with toConfig's (limits.ts, ioLimit). The cgroup writes only what
    // changes: a stem cell specialised for a function of its own size keeps its memory
    // limit (on v1 that is five file operations, on the invocation's path). io {} (or all
    // zeros) lifts earlier io limits: a function without any runs unthrottled.
    const io = ioLimit('io', limits.io, this.config.ioDevice);
    const cgroup = { ...cgroupLimits(limits, cpusOf(this.config.cgroup)), ...(io ? { io } : {}) };
    this.cgroup.setLimits(cgroup);
    Object.assign(this.config.cgroup, cgroup);
    if (limits.diskBytes !== undefined && limits.diskBytes !== this.config.diskBytes) {
      const diskBytes = limits.diskBytes;
      if (!Number.isSafeInteger(diskBytes) || diskBytes <= 0) throw new InvalidSpecError('rootfs.diskBytes', `must be a positive integer, got ${diskBytes}`);
      // The quota is the size of the tmpfs under upper/ (rootfs/overlay.ts): a remount
      // resizes it in place, the container's writes so far kept (a shrink below them fails).
      this.parts.sys.mount(null, this.config.paths.disk, null, MS_REMOUNT | MS_NOSUID | MS_NODEV, `size=${diskBytes}`);
      this.config.diskBytes = diskBytes;
    }
  }

  /** Block I/O bytes since the container was made (before and after an invocation). */
  ioUsage(): IoUsage {
    return this.cgroup.ioUsage();
  }

  /** Bytes through eth0 since the container was made (bridge mode; undefined under none). */
  netUsage(): NetUsage | undefined {
    return this.attachment ? this.parts.network!().usage(this.attachment) : undefined;
  }

  /**
   * A container made ahead in bridge mode (a stem cell, its allowlist empty) takes a
   * function's egress and bandwidth (network.ts's specialise); resolves at once unless a
   * limit needs `tc`. A container under none cannot take bridge mode: its namespace has
   * no eth0, and making one now would put the veth on the request path.
   */
  setNetwork(spec: NetworkSpec): Promise<void> | undefined {
    const { mode, bridge } = bridgeRequestOf(spec);
    if (mode === 'none' && !this.attachment) return undefined;
    if (!this.attachment || !bridge) throw new InvalidSpecError('network.mode', `container ${this.id} was made in mode ${this.config.network}; it cannot change to ${mode}`);
    this.config.bridge = bridge;
    return this.parts.network!().specialise(this.attachment, bridge, this.init.pid);
  }

  /** CPU time and peak memory only (cheap; per invocation). */
  usage(): Pick<CgroupStats, 'cpuUsageUsec' | 'memoryPeakBytes'> {
    return this.cgroup.usage();
  }

  /** Starts a new peak-memory measurement (per invocation, for containers that serve many). */
  resetPeak(): void {
    this.cgroup.resetPeak();
  }

  /**
   * Stops every process of the running container (the cgroup freezer), so that what its
   * last invocation left behind (a busy child, timers, sockets) uses no CPU until thaw().
   * Resolves true once the kernel reports it frozen, false when thaw() or a kill came
   * first. A freeze that fails (a task that would not stop) leaves it running.
   */
  async freeze(): Promise<boolean> {
    this.transition('frozen');
    this.persist();
    try {
      return await this.cgroup.freeze();
    } catch (err) {
      if (this.status === 'frozen') {
        this.transition('running');
        this.persist();
      }
      throw err;
    }
  }

  /** Lets a frozen container run again (also one whose freeze is still under way): a cgroup write and the state file. */
  thaw(): void {
    if (this.status !== 'frozen') return;
    this.cgroup.thaw();
    this.transition('running');
    this.persist();
  }

  /**
   * Whether the container's init or its command (init's children) has a SIGKILL pending:
   * sent from outside while frozen, it takes effect only once the container thaws (cgroup
   * v1 freezes tasks out of signal delivery; v2 lets a fatal signal through).
   */
  killPending(): boolean {
    const init = this.init.pid;
    return init > 0 && [init, ...childrenOf(init)].some(sigkillPending);
  }

  /**
   * SIGKILL kills every process of the cgroup (forks included); other signals go to
   * the container's init, which forwards them to the user process. A frozen container
   * is thawed after the signal is sent: on cgroup v1 a frozen task acts on no signal,
   * SIGKILL included, until it thaws (v2's cgroup.kill kills frozen tasks, and the thaw
   * then only clears the empty cgroup's freeze).
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.status === 'deleted' || this.status === 'stopped') return;
    const frozen = this.status === 'frozen';
    if (signal === 'SIGKILL') {
      this.init.signal('SIGKILL');
      try {
        await this.cgroup.kill();
      } finally {
        if (frozen) this.cgroup.thaw();
      }
    } else {
      this.init.signal(signal);
      if (frozen) this.thaw();
    }
  }

  /** Makes hostDir visible, read-only, at the slot's destination inside the running container. */
  fillSlot(name: string, hostDir: string): void {
    const slot = this.slot(name);
    const { sys } = this.parts;
    if (this.config.userns) return fillSlotIdmapped(this.init.pid, hostDir, slot.hostPath);
    sys.mount(hostDir, slot.hostPath, null, MS_BIND, null);
    sys.mount(null, slot.hostPath, null, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, null);
  }

  private slot(name: string): ContainerConfig['slots'][number] {
    const slot = this.config.slots.find((s) => s.name === name);
    if (!slot) throw new EngineError('INVALID_SPEC', `container ${this.id} has no slot "${name}"`);
    return slot;
  }

  private deleting: Promise<void> | undefined;

  /** Kills what still runs, then removes the cgroup, the mounts and the state dir. Idempotent. */
  delete(): Promise<void> {
    this.deleting ??= this.deleteOnce();
    return this.deleting;
  }

  private async deleteOnce(): Promise<void> {
    if (this.status === 'deleted') return;
    if (this.status !== 'stopped') {
      await this.kill('SIGKILL');
      await this.wait();
    }
    await this.cgroup.destroy();
    if (this.attachment) await this.parts.network!().detach(this.attachment);
    if (this.config.slots.length) unmountAll(this.parts.sys, this.config.paths.slots);
    unmountRootfs(this.parts.sys, this.config.paths);
    if (this.config.userns) unmountAll(this.parts.sys, this.config.paths.binds);
    rmSync(this.config.paths.dir, { recursive: true, force: true });
    if (this.idRange) this.parts.userns?.release(this.idRange, this.id);
    if (this.config.imagePin) unpinImage(this.config.imagePin.imagesDir, this.id);
    this.transition('deleted');
  }
}

function bridgeNetwork(parts: EngineParts): BridgeNetwork {
  if (!parts.network) throw new NetworkUnavailableError('this engine was opened without network settings (FAASBOX_NET_SUBNET)');
  return parts.network();
}

/** Unmounts every mount at or below dir, deepest first. */
export function unmountAll(sys: Sys, dir: string): string[] {
  const points = mountsUnder(dir);
  for (const m of points) sys.umount(m, MNT_DETACH);
  return points;
}
