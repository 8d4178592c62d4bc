/**
 * The filesystem a container gets inside its rootfs: what faasbox-init mounts and makes
 * after pivot_root (its own /proc, a minimal /dev, a /tmp), and in userns mode the part
 * of it that has to happen before (REC_PREMOUNT, device binds).
 */
import { MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_STRICTATIME } from '../sys/index.js';
import type { ContainerConfig, RootOp } from '../config.js';

const PROC_MOUNT = { op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: '' } as const;
const DEV_MOUNT = { op: 'mount', source: 'tmpfs', target: '/dev', fstype: 'tmpfs', flags: MS_NOSUID | MS_STRICTATIME, data: 'mode=755,size=64k' } as const;
const DEVICES = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
] as const;
const CHR = 0o020000;
const DEVICE_NODES: RootOp[] = DEVICES.map(([name, major, minor]) => ({ op: 'mknod', path: `/dev/${name}`, mode: CHR | 0o666, major, minor }));

/*
 * userns mode: a proc mount in a user namespace must find one already visible in its
 * mount namespace (the kernel's mount_too_revealing), so proc is mounted before
 * pivot_root drops the host's; and mknod is denied there, so the devices are the host's
 * nodes bound in (nosuid, but not nodev: they are devices).
 */
const USERNS_PREMOUNTED = new Set<RootOp>([PROC_MOUNT, DEV_MOUNT, ...DEVICE_NODES]);
const USERNS_PREMOUNTS = [PROC_MOUNT, DEV_MOUNT];
const DEVICE_BINDS = DEVICES.map(([name]) => ({ source: `/dev/${name}`, destination: `/dev/${name}`, flags: MS_NOSUID }));

/** The filesystem every container gets after pivot_root: its own /proc, a minimal /dev, a /tmp. */
export function defaultRootOps(diskBytes: number): RootOp[] {
  return [
    PROC_MOUNT,
    DEV_MOUNT,
    ...DEVICE_NODES,
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

/** The root ops, the mounts before pivot_root and the device binds of a container. */
export function rootOpsFor(diskBytes: number, userns: boolean): { rootOps: RootOp[]; premounts: ContainerConfig['premounts']; deviceBinds: ContainerConfig['binds'] } {
  if (!userns) return { rootOps: defaultRootOps(diskBytes), premounts: [], deviceBinds: [] };
  return { rootOps: defaultRootOps(diskBytes).filter((op) => !USERNS_PREMOUNTED.has(op)), premounts: USERNS_PREMOUNTS, deviceBinds: DEVICE_BINDS };
}
