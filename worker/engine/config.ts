/**
 * specconv: a ContainerSpec becomes one validated ContainerConfig here, and nowhere
 * else. Everything downstream (rootfs, cgroups, faasbox-init) trusts it.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DEFAULTS, capabilityNumber, type ContainerSpec } from './spec.js';
import { InvalidSpecError } from './errors.js';
import { ConfigWriter, Rec } from './native/protocol.js';
import { MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_SLAVE, MS_STRICTATIME } from './sys/index.js';
import type { CgroupLimits } from './cgroups/index.js';
import { bridgeRequestOf } from './network/spec.js';
import type { BridgeRequest } from './network/network.js';

// <linux/sched.h>
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

const RLIMIT_NPROC = 6;
const RLIMIT_NOFILE = 7;
const CPU_PERIOD_US = 100_000;

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
}

export interface ContainerConfig {
  id: string;
  paths: ContainerPaths;
  /** Lower dirs top first, as overlayfs's lowerdir= wants them. */
  lowerDirs: string[];
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
  binds: { source: string; destination: string; flags: number }[];
  slots: { name: string; destination: string; hostPath: string }[];
  rootOps: RootOp[];
  maskedPaths: string[];
  readonlyPaths: string[];
  seccomp: 'default' | 'unconfined';
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

export function toConfig(spec: ContainerSpec, stateDir: string): ContainerConfig {
  const id = spec.id ?? newContainerId();
  if (!ID_PATTERN.test(id)) throw new InvalidSpecError('id', `must match ${ID_PATTERN}`);
  if (!spec.rootfs || !Array.isArray(spec.rootfs.layers) || spec.rootfs.layers.length === 0) {
    throw new InvalidSpecError('rootfs.layers', 'must list at least one layer directory');
  }
  const layers = spec.rootfs.layers.map((l, i) => absolute(`rootfs.layers[${i}]`, l));
  for (const l of layers) if (/[:,]/.test(l)) throw new InvalidSpecError('rootfs.layers', `path ${l} contains ':' or ',' which overlayfs options cannot carry`);
  const args = spec.process?.args;
  if (!Array.isArray(args) || args.length === 0 || args.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    throw new InvalidSpecError('process.args', 'must be a non-empty list of strings');
  }
  const limits = spec.limits ?? {};
  const memoryBytes = positiveInt('limits.memoryBytes', limits.memoryBytes, DEFAULTS.memoryBytes);
  if (memoryBytes < 4 * 1024 * 1024) throw new InvalidSpecError('limits.memoryBytes', 'must be at least 4 MiB');
  const cpus = limits.cpus ?? DEFAULTS.cpus;
  if (!(cpus > 0 && cpus <= 1024)) throw new InvalidSpecError('limits.cpus', `must be in (0, 1024], got ${cpus}`);
  const cpuBurst = limits.cpuBurst ?? 0;
  // The kernel refuses a burst above the quota (EINVAL).
  if (!(cpuBurst >= 0 && cpuBurst <= cpus)) throw new InvalidSpecError('limits.cpuBurst', `must be in [0, limits.cpus = ${cpus}], got ${cpuBurst}`);
  const pids = positiveInt('limits.pids', limits.pids, DEFAULTS.pids);
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

  const binds = (spec.mounts ?? []).map((m, i) => {
    const source = absolute(`mounts[${i}].source`, m.source);
    const destination = absolute(`mounts[${i}].destination`, m.destination);
    let flags = MS_NOSUID | MS_NODEV;
    if (m.readonly) flags |= MS_RDONLY;
    if (m.propagation === 'slave') flags |= MS_SLAVE;
    return { source, destination, flags };
  });

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
    cloneFlags: CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP,
    cgroup: { memoryBytes, cpuQuotaUs: Math.round(cpus * CPU_PERIOD_US), cpuPeriodUs: CPU_PERIOD_US, ...(cpuBurst > 0 ? { cpuBurstUs: Math.round(cpuBurst * CPU_PERIOD_US) } : {}), pids },
    binds,
    slots,
    rootOps: defaultRootOps(diskBytes),
    maskedPaths: MASKED_PATHS,
    readonlyPaths: READONLY_PATHS,
    seccomp,
    network,
    ...(bridge ? { bridge } : {}),
  };
}

/** The filesystem every container gets after pivot_root: its own /proc, a minimal /dev, a /tmp. */
function defaultRootOps(diskBytes: number): RootOp[] {
  const chr = 0o020000;
  const dev = (name: string, major: number, minor: number): RootOp => ({ op: 'mknod', path: `/dev/${name}`, mode: chr | 0o666, major, minor });
  return [
    { op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: '' },
    { op: 'mount', source: 'tmpfs', target: '/dev', fstype: 'tmpfs', flags: MS_NOSUID | MS_STRICTATIME, data: 'mode=755,size=64k' },
    dev('null', 1, 3),
    dev('zero', 1, 5),
    dev('full', 1, 7),
    dev('random', 1, 8),
    dev('urandom', 1, 9),
    dev('tty', 5, 0),
    { op: 'mount', source: 'devpts', target: '/dev/pts', fstype: 'devpts', flags: MS_NOSUID | MS_NOEXEC, data: 'newinstance,ptmxmode=0666,mode=0620' },
    { op: 'symlink', target: 'pts/ptmx', path: '/dev/ptmx' },
    { op: 'mount', source: 'shm', target: '/dev/shm', fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: 'mode=1777,size=16m' },
    { op: 'symlink', target: '/proc/self/fd', path: '/dev/fd' },
    { op: 'symlink', target: '/proc/self/fd/0', path: '/dev/stdin' },
    { op: 'symlink', target: '/proc/self/fd/1', path: '/dev/stdout' },
    { op: 'symlink', target: '/proc/self/fd/2', path: '/dev/stderr' },
    { op: 'mount', source: 'tmpfs', target: '/tmp', fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: `mode=1777,size=${diskBytes}` },
  ];
}

/** The records faasbox-init reads on fd 3. */
export function encodeInitConfig(
  config: ContainerConfig,
  opts: { cgroupProcs: string[]; cgroupDir?: string; seccomp: Buffer | null; extraFds: number },
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
  for (const b of config.binds) w.text(Rec.BIND, b.source, b.destination, b.flags);
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

