import koffi from 'koffi';
import type { Sys } from './index.js';
import { SyscallError } from './errors.js';

const EINVAL = 22;
const ENOENT = 2;

/** libc bindings. Synchronous on purpose: each call is a few microseconds on the hot path. */
export class LinuxSys implements Sys {
  private readonly lib = koffi.load('libc.so.6');
  private readonly mountFn = this.lib.func(
    'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  );
  private readonly umount2Fn = this.lib.func('int umount2(const char *target, int flags)');

  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
    if (this.mountFn(source, target, fstype, flags, data) !== 0) {
      const errno = koffi.errno();
      throw new SyscallError('mount', errno, target, mountHint(errno, fstype));
    }
  }

  umount(target: string, flags: number): boolean {
    if (this.umount2Fn(target, flags) === 0) return true;
    const errno = koffi.errno();
    if (errno === EINVAL || errno === ENOENT) return false;
    throw new SyscallError('umount2', errno, target, errno === 16 ? 'still in use; a process may hold it open' : undefined);
  }
}

function mountHint(errno: number, fstype: string | null): string | undefined {
  if (errno === 1) return 'mounting needs root (CAP_SYS_ADMIN in the initial user namespace)';
  if (errno === 19) return `the kernel does not know filesystem type ${fstype ?? ''}`;
  if (errno === 22 && fstype === 'overlay') return 'check that lower/upper/work dirs exist and upper and work share one filesystem';
  return undefined;
}
