/**
 * Idmapped mounts (Linux 5.12+): a detached copy of a mount (open_tree with
 * OPEN_TREE_CLONE) is given a user namespace's id mapping (mount_setattr with
 * MOUNT_ATTR_IDMAP) and attached where a container will look (move_mount). Files owned
 * by on-disk uid 0 then appear as owned by the namespace's host id for uid 0: the
 * container's root owns the shared image layers through that view, while on disk they
 * stay root's and nothing is chowned. glibc 2.36 wraps all three calls.
 */
import koffi from 'koffi';
import { SyscallError } from './errors.js';

const AT_FDCWD = -100;
const AT_RECURSIVE = 0x8000;
const AT_EMPTY_PATH = 0x1000;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOUNT_ATTR_RDONLY = 0x1;
const MOUNT_ATTR_NOSUID = 0x2;
const MOUNT_ATTR_NODEV = 0x4;
const MOUNT_ATTR_IDMAP = 0x100000;
const ENOSYS = 38;

interface Libc {
  open_tree: (dfd: number, path: string, flags: number) => number;
  mount_setattr: (dfd: number, path: string, flags: number, attr: Buffer, size: number) => number;
  move_mount: (fromDfd: number, fromPath: string, toDfd: number, toPath: string, flags: number) => number;
  close: (fd: number) => number;
}

let libc: Libc | undefined;

function lib(): Libc {
  if (libc) return libc;
  const c = koffi.load('libc.so.6');
  libc = {
    open_tree: c.func('int open_tree(int dfd, const char *path, unsigned int flags)'),
    mount_setattr: c.func('int mount_setattr(int dfd, const char *path, unsigned int flags, void *attr, size_t size)'),
    move_mount: c.func('int move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags)'),
    close: c.func('int close(int fd)'),
  };
  return libc;
}

function fail(call: string, path: string): never {
  const errno = koffi.errno();
  const hint =
    errno === ENOSYS
      ? 'this kernel has no idmapped mounts (open_tree/mount_setattr need Linux 5.12+)'
      : errno === 22 /* EINVAL */ && call === 'mount_setattr'
        ? `the filesystem under ${path} does not support idmapped mounts (MOUNT_ATTR_IDMAP)`
        : undefined;
  throw new SyscallError(call, errno, path, hint);
}

/**
 * Mounts a recursive copy of source at target (an existing directory), with the id
 * mapping of the user namespace behind usernsFd. The namespace may be closed afterwards:
 * the mount holds its own reference to the mapping.
 */
export function mountIdmapped(source: string, target: string, usernsFd: number, opts: { readonly?: boolean } = {}): void {
  const c = lib();
  const tree = c.open_tree(AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) fail('open_tree', source);
  try {
    // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; }
    const attr = Buffer.alloc(32);
    attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_IDMAP | (opts.readonly ? MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV : 0)), 0);
    attr.writeBigUInt64LE(BigInt(usernsFd), 24);
    if (c.mount_setattr(tree, '', AT_EMPTY_PATH | AT_RECURSIVE, attr, attr.length) < 0) fail('mount_setattr', source);
    if (c.move_mount(tree, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) fail('move_mount', target);
  } finally {
    c.close(tree);
  }
}
