/**
 * specconv: a ContainerSpec becomes one validated ContainerConfig here, and nowhere
 * else. Everything downstream (rootfs, cgroups, faasbox-init) trusts it.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DEFAULTS, capabilityNumber, type ContainerSpec, type IoLimits } from './spec.js';
import { InvalidSpecError } from './errors.js';
import { ConfigWriter, Rec } from './native/protocol.js';
import { MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_SLAVE } from './sys/index.js';
import type { CgroupLimits } from './cgroups/index.js';
import { rootOpsFor } from './rootfs/root-ops.js';
import { cgroupLimits } from './limits.js';
import { bridgeRequestOf } from './network/spec.js';
import type { BridgeRequest } from './network/network.js';
import { pinOf, type ImagePin } from './image/pins.js';
import { imagesDirOf } from './image/paths.js';

// <linux/sched.h>
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const CLONE_NEWUSER = 0x10000000;

const RLIMIT_NPROC = 6;
const RLIMIT_NOFILE = 7;

export const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

/** Post-pivot_root operations faasbox-init performs, in order. */
export type RootOp =
  | { op: 'mount'; source: string; target: string; fstype: string; flags: number; data: string }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'mknod'; path: string; mode: number; major: number; minor: number }
  | { op: 'symlink'; target: string; path: string }
  | { op: 'mask'; path: string }
  | { op: 'readonly'; path: string };

export interface ContainerPaths {
  dir: string;
  /** tmpfs of diskBytes: holds upper/ and work/, so the container's writes have a quota. */
  disk: string;
  upper: string;
  work: string;
  /** The overlay mount point that becomes the container's root. */
  rootfs: string;
  state: string;
  /** Shared mount points the host fills later (one per slot). */
  slots: string;
  /** userns mode: the idmapped views of the lower dirs (one per layer) and of the bind sources. */
  layers: string;
  binds: string;
}

export interface ContainerConfig {
  id: string;
  paths: ContainerPaths;
  /** Lower dirs top first, as overlayfs's lowerdir= wants them. */
  lowerDirs: string[];
  /** What the container pins in the engine's image store (image/pins.ts): its layers there, and its image when named. */
  imagePin?: ImagePin & { imagesDir: string };
  diskBytes: number;
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  groups: number[];
  capMask: bigint;
  rlimits: { resource: number; soft: number; hard: number }[];
  umask: number;
  hostname: string;
  cloneFlags: number;
  cgroup: CgroupLimits;
  binds: { source: string; destination: string; flags: number; idmap?: boolean }[];
  slots: { name: string; destination: string; hostPath: string }[];
  rootOps: RootOp[];
  maskedPaths: string[];
  readonlyPaths: string[];
  seccomp: 'default' | 'unconfined';
  /** A user namespace of its own (CLONE_NEWUSER in cloneFlags); see userns/. */
  userns: boolean;
  /** The block device io limits apply to ("MAJ:MIN"), or why there is none (blockdev.ts); also for limits given later (updateLimits). */
  ioDevice: { device: string } | { device?: undefined; why: string };
  /** Mounts made before pivot_root, inside the rootfs (userns mode: proc and /dev need the host's view). */
  premounts: Extract<RootOp, { op: 'mount' }>[];
  network: 'none' | 'bridge';
  /** Set in bridge mode: what the container's eth0 gets (network/network.ts). */
  bridge?: BridgeRequest;
}

// As Docker/runc: kernel interfaces a container has no business reading or writing.
export const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/sysrq-trigger',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys'];

export function newContainerId(): string {
  return randomBytes(8).toString('hex');
}

export function containerPaths(stateDir: string, id: string): ContainerPaths {
  const dir = path.join(stateDir, 'containers', id);
  return {
    dir,
    disk: path.join(dir, 'disk'),
    upper: path.join(dir, 'disk', 'upper'),
    work: path.join(dir, 'disk', 'work'),
    rootfs: path.join(dir, 'rootfs'),
    state: path.join(dir, 'state.json'),
    slots: path.join(dir, 'slots'),
    layers: path.join(dir, 'layers'),
    binds: path.join(dir, 'binds'),
  };
}

function positiveInt(field: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidSpecError(field, `must be a positive integer, got ${v}`);
  return v;
}

function absolute(field: string, p: string): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0')) throw new InvalidSpecError(field, `must be an absolute path, got ${JSON.stringify(p)}`);
  return path.posix.normalize(p);
}

function envList(env: ContainerSpec['process']['env']): string[] {
  const list = Array.isArray(env) ? [...env] : Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of list) {
    if (!/^[^=\0]+=[^\0]*$/.test(e)) throw new InvalidSpecError('process.env', `entry ${JSON.stringify(e)} is not KEY=VALUE`);
  }
  // No host environment leaks in; a PATH is supplied when the caller gave none.
  if (!list.some((e) => e.startsWith('PATH='))) list.unshift(`PATH=${DEFAULTS.path}`);
  return list;
}

const NO_DEVICE = { why: 'no block device was given for io limits' } as const;

/** The io limits as the cgroup takes them, checked: whole numbers, at least 0, on a device that exists. */
export function ioLimit(field: string, io: IoLimits | undefined, dev: ContainerConfig['ioDevice']): CgroupLimits['io'] {
  if (io === undefined) return undefined;
  if (typeof io !== 'object' || io === null) throw new InvalidSpecError(field, 'must be an object');
  for (const k of ['readBps', 'writeBps', 'readIops', 'writeIops'] as const) {
    const v = io[k];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new InvalidSpecError(`${field}.${k}`, `must be a whole number >= 0 (0: no limit), got ${v}`);
  }
  const any = !!(io.readBps || io.writeBps || io.readIops || io.writeIops);
  if (dev.device === undefined) {
    if (any) throw new InvalidSpecError(field, `cannot be enforced: ${dev.why}`);
    return undefined;
  }
  return { device: dev.device, ...io };
}

export function toConfig(spec: ContainerSpec, stateDir: string, opts: { ioDevice?: ContainerConfig['ioDevice'] } = {}): ContainerConfig {
  const id = spec.id ?? newContainerId();
  if (!ID_PATTERN.test(id)) throw new InvalidSpecError('id', `must match ${ID_PATTERN}`);
  if (!spec.rootfs || !Array.isArray(spec.rootfs.layers) || spec.rootfs.layers.length === 0) {
    throw new InvalidSpecError('rootfs.layers', 'must list at least one layer directory');
  }
  const layers = spec.rootfs.layers.map((l, i) => absolute(`rootfs.layers[${i}]`, l));
  const image = spec.rootfs.image;
  if (image !== undefined && (typeof image !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(image))) throw new InvalidSpecError('rootfs.image', 'must be a manifest digest sha256:<64 hex>');
  const pin = pinOf(stateDir, layers, image);
  for (const l of layers) if (/[:,]/.test(l)) throw new InvalidSpecError('rootfs.layers', `path ${l} contains ':' or ',' which overlayfs options cannot carry`);
  const args = spec.process?.args;
  if (!Array.isArray(args) || args.length === 0 || args.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    throw new InvalidSpecError('process.args', 'must be a non-empty list of strings');
  }
  // The engine's defaults fill what the spec leaves out; a burst only when asked for.
  const limits = spec.limits ?? {};
  const cgroup = cgroupLimits({
    memoryBytes: limits.memoryBytes ?? DEFAULTS.memoryBytes,
    cpus: limits.cpus ?? DEFAULTS.cpus,
    pids: limits.pids ?? DEFAULTS.pids,
    ...(limits.cpuBurst ? { cpuBurst: limits.cpuBurst } : {}),
  });
  const diskBytes = positiveInt('rootfs.diskBytes', spec.rootfs.diskBytes, DEFAULTS.diskBytes);
  const hostname = spec.hostname ?? id.slice(0, 12);
  if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(hostname)) throw new InvalidSpecError('hostname', `is not a valid hostname: ${hostname}`);
  const { mode: network, bridge } = bridgeRequestOf(spec.network);
  const seccomp = spec.seccomp ?? 'default';
  if (seccomp !== 'default' && seccomp !== 'unconfined') throw new InvalidSpecError('seccomp', 'must be "default" or "unconfined"');

  let capMask = 0n;
  for (const name of spec.process.capabilities ?? []) {
    const n = capabilityNumber(name);
    if (n === undefined) throw new InvalidSpecError('process.capabilities', `unknown or disallowed capability ${name}`);
    capMask |= 1n << BigInt(n);
  }
  const uid = spec.process.uid ?? DEFAULTS.uid;
  const gid = spec.process.gid ?? DEFAULTS.gid;
  for (const [f, v] of [['process.uid', uid], ['process.gid', gid]] as const) {
    if (!Number.isSafeInteger(v) || v < 0 || v > 0xfffffffe) throw new InvalidSpecError(f, `must be a valid id, got ${v}`);
  }
  const nofile = positiveInt('process.rlimits.nofile', spec.process.rlimits?.nofile, DEFAULTS.nofile);
  const nproc = positiveInt('process.rlimits.nproc', spec.process.rlimits?.nproc, DEFAULTS.nproc);

  const userns = spec.userns ?? false;
  if (typeof userns !== 'boolean') throw new InvalidSpecError('userns', 'must be true or false');
  if (userns && (spec.process.groups ?? []).length) throw new InvalidSpecError('process.groups', 'must be empty in userns mode (setgroups is denied in the namespace)');
  const binds = (spec.mounts ?? []).map((m, i) => {
    const source = absolute(`mounts[${i}].source`, m.source);
    const destination = absolute(`mounts[${i}].destination`, m.destination);
    let flags = MS_NOSUID | MS_NODEV;
    if (m.readonly) flags |= MS_RDONLY;
    if (m.propagation === 'slave') flags |= MS_SLAVE;
    // userns mode: bound through an idmapped view of source (made at create), so that host root's files are the container root's.
    return { source, destination, flags, ...(userns ? { idmap: true } : {}) };
  });

  const root = rootOpsFor(diskBytes, userns);
  const ioDevice = opts.ioDevice ?? NO_DEVICE;
  const io = ioLimit('io', spec.io, ioDevice);
  const paths = containerPaths(stateDir, id);
  const slots = (spec.slots ?? []).map((s, i) => {
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(s.name)) throw new InvalidSpecError(`slots[${i}].name`, 'must be a short lowercase name');
    return { name: s.name, destination: absolute(`slots[${i}].destination`, s.destination), hostPath: path.join(paths.slots, s.name) };
  });
  for (const s of slots) binds.push({ source: s.hostPath, destination: s.destination, flags: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_SLAVE });

  return {
    id,
    paths,
    lowerDirs: [...layers].reverse(),
    ...(pin ? { imagePin: { ...pin, imagesDir: imagesDirOf(stateDir) } } : {}),
    diskBytes,
    args: [...args],
    env: envList(spec.process.env),
    cwd: absolute('process.cwd', spec.process.cwd ?? '/'),
    uid,
    gid,
    groups: spec.process.groups ?? [],
    capMask,
    rlimits: [
      { resource: RLIMIT_NOFILE, soft: nofile, hard: nofile },
      { resource: RLIMIT_NPROC, soft: nproc, hard: nproc },
    ],
    umask: spec.process.umask ?? DEFAULTS.umask,
    hostname,
    cloneFlags: CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP | (userns ? CLONE_NEWUSER : 0),
    cgroup: { ...cgroup, ...(io ? { io } : {}) },
    ioDevice,
    binds: [...root.deviceBinds, ...binds],
    slots,
    rootOps: root.rootOps,
    premounts: root.premounts,
    userns,
    maskedPaths: MASKED_PATHS,
    readonlyPaths: READONLY_PATHS,
    seccomp,
    network,
    ...(bridge ? { bridge } : {}),
  };
}

/** The records faasbox-init reads on fd 3. */
export function encodeInitConfig(
  config: ContainerConfig,
  opts: { cgroupProcs: string[]; cgroupDir?: string; seccomp: Buffer | null; extraFds: number; binds?: ContainerConfig['binds'] },
): Buffer {
  const w = new ConfigWriter();
  for (const a of config.args) w.text(Rec.ARG, a);
  for (const e of config.env) w.text(Rec.ENV, e);
  w.text(Rec.CWD, config.cwd)
    .text(Rec.ROOTFS, config.paths.rootfs)
    .text(Rec.HOSTNAME, config.hostname)
    .text(Rec.UID, config.uid)
    .text(Rec.GID, config.gid);
  for (const g of config.groups) w.text(Rec.GROUP, g);
  w.text(Rec.CLONE_FLAGS, config.cloneFlags);
  for (const p of opts.cgroupProcs) w.text(Rec.CGROUP_PROCS, p);
  if (opts.cgroupDir) w.text(Rec.CGROUP_DIR, opts.cgroupDir);
  // Slave propagation (not private) so that a bind declared 'slave' still receives mounts from the host.
  const anySlave = config.binds.some((b) => b.flags & MS_SLAVE);
  w.text(Rec.PROPAGATION, MS_REC | (anySlave ? MS_SLAVE : MS_PRIVATE));
  if (config.userns) w.text(Rec.USERNS, 1);
  for (const m of config.premounts) w.text(Rec.PREMOUNT, m.source, m.target, m.fstype, m.flags, m.data);
  for (const b of opts.binds ?? config.binds) w.text(Rec.BIND, b.source, b.destination, b.flags);
  for (const op of config.rootOps) {
    switch (op.op) {
      case 'mount':
        w.text(Rec.MOUNT, op.source, op.target, op.fstype, op.flags, op.data);
        break;
      case 'mkdir':
        w.text(Rec.MKDIR, op.path, op.mode.toString(8));
        break;
      case 'mknod':
        w.text(Rec.MKNOD, op.path, op.mode.toString(8), op.major, op.minor);
        break;
      case 'symlink':
        w.text(Rec.SYMLINK, op.target, op.path);
        break;
      case 'mask':
        w.text(Rec.MASK, op.path);
        break;
      case 'readonly':
        w.text(Rec.READONLY, op.path);
        break;
    }
  }
  for (const p of config.maskedPaths) w.text(Rec.MASK, p);
  for (const p of config.readonlyPaths) w.text(Rec.READONLY, p);
  for (const r of config.rlimits) w.text(Rec.RLIMIT, r.resource, r.soft, r.hard);
  w.text(Rec.CAPS, config.capMask.toString());
  w.text(Rec.UMASK, config.umask.toString(8));
  w.text(Rec.NO_NEW_PRIVS, 1);
  w.text(Rec.LOOPBACK_UP, 1);
  w.text(Rec.SETSID, 1);
  if (opts.extraFds > 0) w.text(Rec.EXTRA_FDS, opts.extraFds);
  if (opts.seccomp) w.raw(Rec.SECCOMP, opts.seccomp);
  return w.toBuffer();
}

