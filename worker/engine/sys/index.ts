/**
 * Every kernel call faasbox makes from TypeScript goes through this interface, so that
 * the logic above it (rootfs, overlay, gc) is unit-testable with FakeSys and runs on the
 * real kernel through LinuxSys (koffi) in integration tests and production.
 */
export { SyscallError, errnoName } from './errors.js';

// <linux/mount.h> / <sys/mount.h>
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
export const MS_SHARED = 1 << 20;
export const MS_STRICTATIME = 1 << 24;

export const MNT_DETACH = 2;
export const UMOUNT_NOFOLLOW = 8;

export interface Sys {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  /** Resolves quietly when target is not mounted (EINVAL) or gone (ENOENT): teardown is idempotent. */
  umount(target: string, flags: number): boolean;
}

let real: Sys | undefined;

/** The kernel, through koffi. Loaded lazily so that pure logic never needs libc bindings. */
export async function linuxSys(): Promise<Sys> {
  if (!real) real = new (await import('./linux.js')).LinuxSys();
  return real;
}
