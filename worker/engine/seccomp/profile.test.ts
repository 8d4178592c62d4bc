import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { describe, it } from 'node:test';
import { ARCHES, AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, type SeccompArch } from './arch.js';
import { BPF_MAXINSNS, compileSeccomp, decodeProgram } from './bpf.js';
import { defaultProfile } from './profile.js';
import { evaluate, type Verdict } from './testdata/interpreter.js';

const { EPERM, ENOSYS } = constants.errno;

/** What the brief and Docker's profile keep out of unprivileged containers. */
const FORBIDDEN = [
  'mount', 'umount2', 'pivot_root', 'move_mount', 'open_tree', 'fsopen', 'fsmount', 'fsconfig', 'fspick', 'mount_setattr',
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'kexec_load', 'kexec_file_load', 'bpf', 'perf_event_open',
  'keyctl', 'add_key', 'request_key', 'unshare', 'setns', 'init_module', 'finit_module', 'delete_module', 'reboot',
  'swapon', 'swapoff', 'acct', 'settimeofday', 'clock_settime', 'adjtimex', 'clock_adjtime', 'open_by_handle_at',
  'name_to_handle_at', 'userfaultfd', 'lookup_dcookie', 'quotactl', 'quotactl_fd', 'iopl', 'ioperm', 'vhangup', 'syslog',
  'chroot', 'uselib', 'nfsservctl', '_sysctl', 'create_module', 'get_kernel_syms', 'query_module', 'kcmp',
  'fanotify_init', 'mbind', 'set_mempolicy', 'migrate_pages', 'move_pages', 'pidfd_getfd', 'process_madvise',
  'sethostname', 'setdomainname', 'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'modify_ldt',
];

/** A sample of what glibc/musl programs, Node.js, Python and busybox call. */
const NEEDED = [
  'read', 'write', 'openat', 'close', 'fstat', 'newfstatat', 'statx', 'lseek', 'mmap', 'mprotect', 'munmap', 'brk',
  'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'ioctl', 'pread64', 'readv', 'writev', 'access', 'faccessat2',
  'pipe2', 'dup3', 'getpid', 'gettid', 'socket', 'connect', 'execve', 'exit_group', 'wait4', 'kill', 'uname', 'fcntl',
  'getdents64', 'getcwd', 'chdir', 'mkdirat', 'unlinkat', 'renameat2', 'futex', 'set_robust_list', 'rseq',
  'set_tid_address', 'prlimit64', 'getrandom', 'epoll_create1', 'epoll_ctl', 'epoll_pwait', 'eventfd2', 'sched_getaffinity',
  'madvise', 'clock_gettime', 'clock_nanosleep', 'sched_yield', 'sigaltstack', 'prctl', 'arch_prctl', 'capget',
  'setuid', 'setgid', 'setgroups', 'memfd_create', 'membarrier', 'sendfile', 'copy_file_range', 'close_range',
];

function programFor(arch: SeccompArch) {
  return decodeProgram(compileSeccomp(defaultProfile, arch));
}

function verdict(arch: SeccompArch, name: string, args: number[] = []): Verdict | undefined {
  const nr = ARCHES[arch].syscalls[name];
  if (nr === undefined) return undefined;
  return evaluate(programFor(arch), { nr, arch: arch === 'x86_64' ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_AARCH64, args });
}

describe('defaultProfile', () => {
  it('is an allowlist: EPERM by default, ENOSYS for syscalls newer than the table', () => {
    assert.deepEqual(defaultProfile.defaultAction, { kind: 'errno', errno: EPERM });
    assert.deepEqual(defaultProfile.newerSyscallAction, { kind: 'errno', errno: ENOSYS });
  });

  it('names only syscalls that exist on x86_64 or aarch64', () => {
    const known = (n: string) => Object.values(ARCHES).some((a) => Object.hasOwn(a.syscalls, n));
    const unknown = defaultProfile.rules.flatMap((r) => r.names).filter((n) => !known(n));
    assert.deepEqual(unknown, []);
  });

  it('has no unconditional allow for a forbidden syscall', () => {
    for (const rule of defaultProfile.rules) {
      if (rule.action.kind !== 'allow' || (rule.args?.length ?? 0) > 0) continue;
      const leaked = rule.names.filter((n) => FORBIDDEN.includes(n) || n === 'clone' || n === 'clone3' || n === 'personality');
      assert.deepEqual(leaked, []);
    }
  });

  for (const arch of ['x86_64', 'aarch64'] as const) {
    it(`refuses every forbidden syscall with EPERM on ${arch}`, () => {
      let checked = 0;
      for (const name of FORBIDDEN) {
        const v = verdict(arch, name);
        if (v === undefined) continue; // not on this arch (e.g. iopl on aarch64)
        checked++;
        assert.deepEqual(v, { action: 'errno', errno: EPERM }, name);
      }
      assert.ok(checked > 40, `only ${checked} forbidden syscalls exist on ${arch}?`);
    });

    it(`allows what ordinary programs need on ${arch}`, () => {
      for (const name of NEEDED) {
        const v = verdict(arch, name);
        if (v === undefined) continue;
        assert.deepEqual(v, { action: 'allow' }, name);
      }
    });

    it(`compiles to a program well within the kernel limit on ${arch}`, () => {
      const n = programFor(arch).length;
      assert.ok(n > 20 && n <= BPF_MAXINSNS, `${n} instructions`);
    });
  }

  it('covers the syscalls absent from aarch64 through their *at replacements', () => {
    for (const name of ['open', 'stat', 'fork', 'pipe', 'dup2', 'poll', 'select', 'epoll_wait']) assert.equal(ARCHES.aarch64.syscalls[name], undefined, name);
    for (const name of ['openat', 'newfstatat', 'clone', 'pipe2', 'dup3', 'ppoll', 'pselect6', 'epoll_pwait']) assert.notEqual(ARCHES.aarch64.syscalls[name], undefined, name);
  });
});
