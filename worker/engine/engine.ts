/**
 * The container engine: the entry point of the runtime library. It chooses the cgroup
 * flavour and compiles the seccomp filter once, creates containers from specs, lists
 * them from their state dirs, and garbage-collects what a crashed owner left behind.
 */
import { existsSync, readdirSync, rmSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { linuxSys, MNT_DETACH, type Sys } from './sys/index.js';
import { detectCgroupDriver, type CgroupDriver } from './cgroups/index.js';
import { ensureStateMount, releaseStateMount } from './state-mount.js';
import { compileSeccomp, defaultProfile } from './seccomp/index.js';
import { containerPaths, toConfig, type ContainerConfig } from './config.js';
import { Container, unmountAll, type ContainerIO, type EngineParts, type ExitResult } from './container.js';
import type { ContainerSpec } from './spec.js';
import { isAlive, readState, type PersistedState } from './state.js';
import { unmountRootfs } from './rootfs/overlay.js';
import { mountsUnder } from './mounts.js';
import { ZygoteLauncher, zygoteSupported } from './zygote.js';
import { initBinaryPath } from './native/protocol.js';
import { isLiveSeed, SeedPool } from './seeds.js';
import { IdRanges, type RangeOptions } from './userns/ranges.js';
import { blockDeviceOf } from './blockdev.js';
import { IdmapNamespaces } from './userns/namespace.js';
import { BridgeNetwork, type NetworkGcReport } from './network/network.js';
import { NetworkConfigError, NetworkUnavailableError } from './network/errors.js';
import type { NetworkSettings } from './network/options.js';
import { collectLeases } from './image/pins.js';
import { imagesDirOf } from './image/paths.js';
import { DEFAULT_STATE_DIR } from './state-dir.js';

export { mountsUnder };

/**
 * The engine's settings, as arguments: the CLI reads them from the environment
 * (cli/engine-env.ts: FAASBOX_STATE_DIR, FAASBOX_CGROUP_ROOT, FAASBOX_SEEDS,
 * FAASBOX_ZYGOTE, FAASBOX_INIT_BIN) and passes them down; nothing here reads it.
 */
export interface EngineOptions {
  /** Default: DEFAULT_STATE_DIR. */
  stateDir?: string;
  /** cgroup path under which every container's cgroup is made. Default: /faasbox/<hash of the state dir>. */
  cgroupRoot?: string;
  /** Launch container monitors through one zygote process (default true, where fd passing works); false: spawn faasbox-init per container. */
  zygote?: boolean;
  /** The faasbox-init binary. Default: the one `npm install` built (native/protocol.ts initBinaryPath). */
  initBin?: string;
  sys?: Sys;
  cgroups?: CgroupDriver;
  /**
   * Container inits kept parked in their cgroups and namespaces (cgroup v1, with the
   * zygote; see seeds.ts). Default: DEFAULT_SEEDS; 0 turns them off.
   */
  seeds?: number;
  /** Host id ranges of userns containers (default: 65536 ids each, from 2^31); byDefault: every spec that does not say otherwise gets userns (a worker's FAASBOX_USERNS=1). */
  userns?: RangeOptions & { byDefault?: boolean };
  /**
   * Bridge mode's settings (from FAASBOX_NET_*, read by the entry points). Settings that
   * do not parse, or a subnet overlapping a host route, make open() throw; a kernel
   * without veth, bridge or nftables leaves bridge creates failing and none working.
   */
  network?: NetworkSettings;
}

export interface GcReport {
  containers: string[];
  cgroups: string[];
  mounts: string[];
  /** Leases and veths freed (bridge mode). */
  network?: NetworkGcReport;
  /** Image pins freed (image/pins.ts): the containers whose leases went; absent when none. */
  images?: string[];
}

export { DEFAULT_STATE_DIR };
export const DEFAULT_SEEDS = 2;

export class Engine implements EngineParts {
  private seccompProgram: Buffer | undefined;
  /** Started at the first create; absent (the zygote option false) spawns faasbox-init per container instead. */
  readonly zygote: ZygoteLauncher | undefined;
  readonly seeds: SeedPool | undefined;
  readonly userns: IdRanges;
  readonly idmaps = new IdmapNamespaces();
  /** Whether a spec that does not say gets a user namespace (FAASBOX_USERNS=1). */
  readonly usernsByDefault: boolean;
  /** Where io limits apply: found once, at the first container (blockdev.ts). */
  private ioDevice: ContainerConfig['ioDevice'] | undefined;
  private bridge: BridgeNetwork | undefined;
  private bridgeError: Error | undefined;

  private constructor(
    readonly stateDir: string,
    readonly sys: Sys,
    readonly cgroups: CgroupDriver,
    seeds: number,
    zygote: boolean,
    readonly initBin: string,
    /** The root is the default /faasbox/<hash>, made by this engine's kind: close() may remove it and /faasbox when empty. */
    private readonly defaultRoot = false,
    userns: NonNullable<EngineOptions['userns']> = {},
  ) {
    this.userns = new IdRanges(stateDir, userns);
    this.usernsByDefault = userns.byDefault ?? false;
    this.zygote = zygote && zygoteSupported() ? new ZygoteLauncher(initBin) : undefined;
    // Seeds need a cgroup that can change its name (v1); v2 clones init into its cgroup anyway.
    if (this.zygote && cgroups.rename && seeds > 0) this.seeds = new SeedPool(cgroups, this.zygote, { size: seeds, networking: () => this.bridge });
  }

  static async open(opts: EngineOptions = {}): Promise<Engine> {
    const stateDir = path.resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
    mkdirSync(path.join(stateDir, 'containers'), { recursive: true, mode: 0o700 });
    const sys = opts.sys ?? (await linuxSys());
    // Each state dir owns its own cgroup subtree, so that several engines (workers) on one
    // machine never garbage-collect each other's cgroups.
    const chosen = opts.cgroupRoot;
    const root = chosen ?? `/faasbox/${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
    const cgroups = opts.cgroups ?? detectCgroupDriver({ root });
    const seeds = opts.seeds ?? DEFAULT_SEEDS;
    const engine = new Engine(stateDir, sys, cgroups, seeds, opts.zygote ?? true, opts.initBin ?? initBinaryPath(), chosen === undefined && opts.cgroups === undefined, opts.userns);
    if (opts.network) {
      try {
        engine.bridge = await BridgeNetwork.open(stateDir, opts.network);
      } catch (err) {
        if (err instanceof NetworkConfigError) {
          // The worker refuses to start: nothing of this engine may outlive the refusal.
          await engine.close().catch(() => {});
          throw err;
        }
        engine.bridgeError = err as Error;
      }
    }
    return engine;
  }

  /** The bridge network, or why there is none (NetworkUnavailableError). */
  readonly network = (): BridgeNetwork => {
    if (this.bridge) return this.bridge;
    if (this.bridgeError instanceof NetworkUnavailableError) throw this.bridgeError;
    throw new NetworkUnavailableError(this.bridgeError ? this.bridgeError.message : 'this engine was opened without network settings (FAASBOX_NET_SUBNET)', { cause: this.bridgeError });
  };

  /** Whether bridge mode works on this engine. */
  get hasNetwork(): boolean {
    return this.bridge !== undefined;
  }

  readonly seccomp = (mode: ContainerConfig['seccomp']): Buffer | null => {
    if (mode === 'unconfined') return null;
    this.seccompProgram ??= compileSeccomp(defaultProfile);
    return this.seccompProgram;
  };

  config(spec: ContainerSpec): ContainerConfig {
    this.ioDevice ??= blockDeviceOf(this.stateDir);
    return toConfig(this.usernsByDefault && spec.userns === undefined ? { ...spec, userns: true } : spec, this.stateDir, { ioDevice: this.ioDevice });
  }

  /** Prepares a container and parks its process before exec. */
  async create(spec: ContainerSpec, io?: ContainerIO): Promise<Container> {
    const config = this.config(spec);
    // Looked up in mountinfo only until found; close() and gc forget it when they release it.
    this.stateMounted ||= ensureStateMount(this.sys, this.containersDir);
    return Container.create(config, this, io);
  }

  private get containersDir(): string {
    return path.join(this.stateDir, 'containers');
  }

  /** Whether the state tmpfs is known to be mounted (see state-mount.ts). */
  private stateMounted = false;

  private releaseStateMount(): void {
    releaseStateMount(this.sys, this.containersDir);
    this.stateMounted = false;
  }

  /** create + start + wait + delete: a container in the foreground. */
  async run(spec: ContainerSpec, io?: ContainerIO, onCreated?: (c: Container) => void): Promise<ExitResult> {
    const c = await this.create(spec, io);
    try {
      onCreated?.(c);
      c.start();
      return await c.wait();
    } finally {
      await c.delete();
    }
  }

  /**
   * Stops the zygote (not needed on the way out: it dies with this process). It exits
   * once the containers it launched have ended; later creates spawn faasbox-init.
   */
  async close(): Promise<void> {
    await this.seeds?.drain({ close: true });
    await this.zygote?.close();
    this.idmaps.close();
    // The bridge and the table go with the last lease (a CLI's engine leaves the worker's alone).
    await this.bridge?.close().catch(() => false);
    this.releaseStateMount();
    // Like the state tmpfs: the cgroup root goes once nothing is left in it (a `ctr run`
    // used to leave /faasbox/<hash> behind in every v1 hierarchy).
    if (this.defaultRoot) {
      try {
        this.cgroups.removeRoot({ parent: true });
      } catch {
        // Still in use or not ours to remove after all: gc and the next close try again.
      }
    }
  }

  list(): PersistedState[] {
    const dir = path.join(this.stateDir, 'containers');
    const out: PersistedState[] = [];
    for (const id of safeReaddir(dir)) {
      const s = readState(path.join(dir, id, 'state.json'));
      if (s) out.push(s);
    }
    return out;
  }

  state(id: string): PersistedState | undefined {
    return readState(containerPaths(this.stateDir, id).state);
  }

  /**
   * Removes every container whose owner is gone (all of them with all=true): its
   * processes (by killing its cgroup), cgroup, mounts and state dir; then cgroups and
   * mounts under faasbox's prefixes that no live container claims.
   */
  async gc(opts: { all?: boolean; only?: string } = {}): Promise<GcReport> {
    const report: GcReport = { containers: [], cgroups: [], mounts: [] };
    // Everything means this engine's parked seeds too (a later create makes new ones).
    if (opts.all && !opts.only) await this.seeds?.drain();
    const dir = path.join(this.stateDir, 'containers');
    const live = new Set<string>();
    for (const id of opts.only ? [opts.only] : safeReaddir(dir)) {
      const s = readState(path.join(dir, id, 'state.json'));
      if (!opts.all && ((s && isAlive(s.owner)) || (!s && youngerThan(path.join(dir, id), UNKNOWN_GRACE_MS)))) {
        // Alive, or being created (no readable state yet) by an engine on this state dir.
        live.add(id);
        continue;
      }
      const cg = this.cgroups.open(id);
      if (cg) {
        await cg.destroy();
        report.cgroups.push(id);
      }
      const paths = containerPaths(this.stateDir, id);
      unmountRootfs(this.sys, paths);
      report.mounts.push(...unmountAll(this.sys, paths.dir));
      rmSync(paths.dir, { recursive: true, force: true });
      report.containers.push(id);
    }
    // Id ranges whose container is gone (a crash between create and delete); a container
    // made since the scan above has its dir, so its fresh lease stays.
    this.userns.collect((id) => live.has(id) || existsSync(path.join(dir, id)));
    // Image pins likewise (image/pins.ts): a lease is written after its container's dir.
    const pins = collectLeases(imagesDirOf(this.stateDir), (id) => live.has(id) || existsSync(path.join(dir, id)));
    if (pins.length) report.images = pins;
    if (this.bridge) {
      // Leases of containers that are not alive (their owner gone, or removed above); a
      // lease of a container being created has its dir already (Container.create makes it first).
      // A parked bridge seed's lease is held under its name while its engine lives.
      report.network = await this.bridge.gc((id) => (opts.only ? id !== opts.only : live.has(id) || (!opts.all && isLiveSeed(id))));
    }
    if (opts.only) return report;
    for (const name of this.cgroups.list()) {
      if (live.has(name) || report.cgroups.includes(name)) continue;
      if (!opts.all && isLiveSeed(name)) continue;
      await this.cgroups.open(name)?.destroy();
      report.cgroups.push(name);
    }
    // Mounts whose state dir is already gone (a crash between rmdir and umount).
    for (const m of mountsUnder(dir)) {
      if (m === dir) continue; // the state tmpfs itself (see state-mount.ts)
      const id = path.relative(dir, m).split(path.sep)[0]!;
      if (live.has(id)) continue;
      this.sys.umount(m, MNT_DETACH);
      if (!report.mounts.includes(m)) report.mounts.push(m);
    }
    if (live.size === 0) this.releaseStateMount();
    return report;
  }
}

/** A container dir without readable state younger than this is left alone by gc. */
const UNKNOWN_GRACE_MS = 60_000;

function youngerThan(p: string, ms: number): boolean {
  try {
    return Date.now() - statSync(p).mtimeMs < ms;
  } catch {
    return false;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
