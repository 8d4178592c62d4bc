/**
 * The container spec: what a caller asks for. It is converted once, by toConfig() in
 * config.ts, into the ContainerConfig that flows unchanged to the kernel.
 */
import { LIMITS } from '../../common/function-spec.js';

import type { NetworkSpec } from './network/spec.js';

export type NetworkMode = 'none' | 'bridge';
export type { NetworkSpec };
export type SeccompMode = 'default' | 'unconfined';

export interface BindMount {
  /** Host path. */
  source: string;
  /** Path inside the container; created if missing (never following the image's symlinks out of it). */
  destination: string;
  readonly?: boolean;
  /** 'slave' lets mounts made later on the host below source appear inside (used to hand code to a warm container). */
  propagation?: 'private' | 'slave';
}

export interface ProcessSpec {
  args: string[];
  env?: string[] | Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  groups?: number[];
  /** Capability names (e.g. "CAP_NET_BIND_SERVICE") the process keeps. Default: none. */
  capabilities?: string[];
  rlimits?: { nofile?: number; nproc?: number };
  umask?: number;
}

export interface ResourceLimits {
  memoryBytes?: number;
  /** CPU quota in cores (0.5 = half of one core per period). */
  cpus?: number;
  /**
   * Unused quota that may be saved up for short bursts, in cores (Linux's CFS burst; at
   * most cpus; 0 or absent: none). A function that is idle most of the time then runs a
   * short invocation at full speed instead of being throttled mid-way, and its average
   * stays within cpus. Ignored by kernels without CFS burst (before 5.14).
   */
  cpuBurst?: number;
  pids?: number;
}

/**
 * Block I/O limits on the device holding the state dir and the image layers (see
 * blockdev.ts for what that throttles); absent or 0: no limit on that axis.
 */
export interface IoLimits {
  readBps?: number;
  writeBps?: number;
  readIops?: number;
  writeIops?: number;
}

export interface ContainerSpec {
  id?: string;
  rootfs: {
    /** Read-only layer directories, bottom first (as in an OCI manifest). */
    layers: string[];
    /**
     * The stored image (its manifest digest) the layers are from: the container pins it
     * against prune (image/pins.ts). Layers of the engine's store are pinned without it.
     */
    image?: string;
    /** Size of the tmpfs holding this container's writes: its disk quota. */
    diskBytes?: number;
  };
  process: ProcessSpec;
  hostname?: string;
  limits?: ResourceLimits;
  io?: IoLimits;
  mounts?: BindMount[];
  /** Default none: loopback only. bridge: eth0 on the worker's bridge (network/network.ts). */
  network?: NetworkSpec;
  seccomp?: SeccompMode;
  /**
   * A user namespace of its own: the container's ids 0..65535 map to a host id range
   * leased to it alone (userns/ranges.ts), and its layers and binds are idmapped mounts.
   * The process's uid/gid are ids inside that range; groups must be empty.
   */
  userns?: boolean;
  /**
   * Empty read-only mount points the host can fill while the container runs
   * (Container.fillSlot): how a warm container receives a function's code without a
   * restart. Host-to-container mount propagation, as Kubernetes' HostToContainer.
   */
  slots?: { name: string; destination: string }[];
}

/**
 * Defaults a caller gets when it says nothing: tight, unprivileged, no network. Memory,
 * pids and disk are a function's defaults (common/function-spec.ts LIMITS), so that
 * `faasbox ctr run` and a deployed function start from the same numbers.
 */
export const DEFAULTS = {
  uid: 65534,
  gid: 65534,
  memoryBytes: LIMITS.memoryMb.default * 1024 * 1024,
  cpus: 1,
  pids: LIMITS.pidsLimit.default,
  diskBytes: LIMITS.diskMb.default * 1024 * 1024,
  nofile: 1024,
  // RLIMIT_NPROC counts every process of the uid host-wide, and pooled containers share
  // uid 65534: a small value would make unrelated containers fail each other's forks.
  // The pids cgroup is the per-container bound; this only stops a runaway uid.
  nproc: 16384,
  umask: 0o022,
  path: '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
} as const;

const CAPABILITIES: Record<string, number> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_RAW: 13,
  CAP_SYS_CHROOT: 18,
  CAP_MKNOD: 27,
  CAP_AUDIT_WRITE: 29,
  CAP_SETFCAP: 31,
};

export function capabilityNumber(name: string): number | undefined {
  const key = name.toUpperCase().startsWith('CAP_') ? name.toUpperCase() : `CAP_${name.toUpperCase()}`;
  return CAPABILITIES[key];
}
