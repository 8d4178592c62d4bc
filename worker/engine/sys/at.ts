/**
 * Path calls relative to a directory fd, with the kernel doing the confinement:
 * openat2(RESOLVE_IN_ROOT) resolves a path as if the fd were "/" (a symlink to /etc or a
 * ".." above the fd stays below it), and RESOLVE_NO_MAGICLINKS refuses /proc/self/fd-style
 * links. What the image unpacker and the image-config reader build on; the C stage does the
 * same for bind mounts (native/faasbox-init.c). koffi is loaded on first use.
 *
 * Node has no mknod, xattr or openat2 calls, hence these; everything else (mkdir, link,
 * lchown, open with O_CREAT) goes through node:fs on "/proc/self/fd/N/name" (see atPath),
 * which the kernel resolves from that fd without looking at the path it was opened by.
 */
import koffi from 'koffi';
import { SyscallError } from './errors.js';

// <fcntl.h>, <linux/openat2.h>
export const O_RDONLY = 0;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
// <sys/stat.h>
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

const SYS_OPENAT2: Record<string, number> = { x64: 437, arm64: 437 };
const EINTR = 4;

interface Libc {
  syscall: (...args: unknown[]) => number | bigint;
  mknodat: (dirfd: number, path: string, mode: number, dev: bigint) => number;
  lsetxattr: (path: string, name: string, value: Buffer, size: number, flags: number) => number;
  lgetxattr: (path: string, name: string, value: Buffer | null, size: number) => number | bigint;
  flock: (fd: number, op: number) => number;
}

let libc: Libc | undefined;

function lib(): Libc {
  if (libc) return libc;
  const c = koffi.load('libc.so.6');
  libc = {
    syscall: c.func('long syscall(long number, ...)'),
    mknodat: c.func('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)'),
    lsetxattr: c.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
    lgetxattr: c.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)'),
    flock: c.func('int flock(int fd, int operation)'),
  };
  return libc;
}

/** "/proc/self/fd/N/name": a path node:fs can take that the kernel resolves from fd N. */
export function atPath(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/**
 * openat2(2). Returns the new fd (close it with fs.closeSync). `shown` is the path errors
 * name (the caller's, inside its root), never the host path.
 */
export function openat2(dirfd: number, path: string, flags: number, resolve: number, shown = path, mode = 0): number {
  const nr = SYS_OPENAT2[process.arch];
  if (nr === undefined) throw new SyscallError('openat2', 38 /* ENOSYS */, shown, `no syscall number for ${process.arch}`);
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags | O_CLOEXEC), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  for (;;) {
    const fd = Number(lib().syscall(nr, 'int', dirfd, 'const char *', path, 'void *', how, 'size_t', how.length));
    if (fd >= 0) return fd;
    const errno = koffi.errno();
    if (errno !== EINTR) throw new SyscallError('openat2', errno, shown, errno === 38 ? 'openat2 needs Linux 5.6 or later' : undefined);
  }
}

/** mknodat(2): a device node or FIFO named name in the directory dirfd. */
export function mknodat(dirfd: number, name: string, mode: number, major = 0, minor = 0, shown = name): void {
  // glibc's makedev for the 64-bit dev_t.
  const dev = (BigInt(major & 0xfff) << 8n) | BigInt(minor & 0xff) | (BigInt(minor & ~0xff) << 12n) | (BigInt(major & ~0xfff) << 32n);
  if (lib().mknodat(dirfd, name, mode, dev) !== 0) throw new SyscallError('mknodat', koffi.errno(), shown);
}

/** lsetxattr(2): never follows a symlink named by path's last component. */
export function lsetxattr(path: string, name: string, value: Buffer, shown = path): void {
  if (lib().lsetxattr(path, name, value, value.length, 0) !== 0) throw new SyscallError('lsetxattr', koffi.errno(), `${shown} ${name}`);
}

/** lgetxattr(2): the value, or undefined when the attribute is not set (ENODATA). */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const n = Number(lib().lgetxattr(path, name, null, 0));
  if (n < 0) {
    const errno = koffi.errno();
    if (errno === 61 /* ENODATA */) return undefined;
    throw new SyscallError('lgetxattr', errno, `${path} ${name}`);
  }
  const buf = Buffer.alloc(n);
  const got = Number(lib().lgetxattr(path, name, buf, n));
  if (got < 0) throw new SyscallError('lgetxattr', koffi.errno(), `${path} ${name}`);
  return buf.subarray(0, got);
}

// <sys/file.h>
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
const EWOULDBLOCK = 11;

/**
 * flock(2) without blocking (LOCK_NB is added): true when taken, false when another open
 * file holds a conflicting lock. Never blocking keeps the event loop free; callers poll.
 */
export function tryFlock(fd: number, op: number, shown: string): boolean {
  for (;;) {
    if (lib().flock(fd, op | LOCK_NB) === 0) return true;
    const errno = koffi.errno();
    if (errno === EWOULDBLOCK) return false;
    if (errno !== EINTR) throw new SyscallError('flock', errno, shown);
  }
}
