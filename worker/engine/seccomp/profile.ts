/**
 * Seccomp policy as data: the profile type and faasbox's default profile.
 *
 * The shape follows Docker/moby's seccomp profiles (names -> action, optional argument
 * conditions) so that people who know those can read ours, with two deliberate
 * differences: actions are typed objects instead of SCMP_ACT_* strings, and rules are
 * evaluated first-match-wins per syscall (libseccomp's precedence rules are subtle;
 * an ordered list is what a reader expects).
 */
import { constants } from 'node:os';

/** What the kernel does with a syscall. errno is returned to the caller as -errno. */
export type SeccompAction =
  | { readonly kind: 'allow' }
  | { readonly kind: 'errno'; readonly errno: number }
  | { readonly kind: 'kill_process' }
  | { readonly kind: 'kill_thread' }
  | { readonly kind: 'trap' }
  | { readonly kind: 'log' };

export const ALLOW: SeccompAction = Object.freeze({ kind: 'allow' });
export const KILL_PROCESS: SeccompAction = Object.freeze({ kind: 'kill_process' });
export function errno(code: number): SeccompAction {
  return Object.freeze({ kind: 'errno', errno: code });
}

/**
 * Unsigned comparison of one syscall argument, like Docker's SCMP_CMP_*.
 * masked_eq holds when (arg & value) === valueTwo.
 */
export type SeccompOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'masked_eq';

export interface SeccompArg {
  /** Argument position, 0..5. */
  readonly index: number;
  readonly op: SeccompOp;
  /** Operand; for masked_eq the mask. Negative numbers are taken as two's complement. */
  readonly value: number | bigint;
  /** masked_eq only: the value (arg & mask) must equal. */
  readonly valueTwo?: number | bigint;
  /**
   * 32 compares only the low half of the register. Use it for int-typed arguments: the
   * kernel ignores their upper half, so a 64-bit comparison in a *deny* rule could be
   * dodged by a caller that sets the upper bits (ioctl(fd, (1<<32)|TIOCSTI) still is
   * TIOCSTI to the kernel). Default 64.
   */
  readonly width?: 32 | 64;
}

export interface SeccompRule {
  /** Syscall names; a name the target architecture lacks is skipped (e.g. arch_prctl on aarch64). */
  readonly names: readonly string[];
  readonly action: SeccompAction;
  /** All must hold (AND). A syscall's rules are tried in profile order; the first match decides. */
  readonly args?: readonly SeccompArg[];
  readonly comment?: string;
}

export interface SeccompProfile {
  /** For syscalls no rule matches. x32 syscall numbers on x86_64 get this too, unless it is allow/log. */
  readonly defaultAction: SeccompAction;
  /**
   * For syscall numbers above the highest one in our generated table, i.e. syscalls newer
   * than the headers the table came from. ENOSYS makes libc fall back to an older syscall
   * (as with clone3), where EPERM would be taken as a real refusal. Defaults to defaultAction.
   */
  readonly newerSyscallAction?: SeccompAction;
  readonly rules: readonly SeccompRule[];
}

const { EPERM, ENOSYS, EAFNOSUPPORT } = constants.errno;

/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (<linux/sched.h>). */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;
export const AF_VSOCK = 40;
export const TIOCSTI = 0x5412;

/**
 * What ordinary programs (glibc and musl programs, Node.js, Python, busybox) need and an
 * unprivileged process may safely do. Containers run with no capabilities, so Docker's
 * capability-gated groups are all left out; beyond Docker we also refuse ptrace and
 * process_vm_* (cross-process memory access), adjtimex/clock_adjtime, name_to_handle_at,
 * io_uring (a large, often-exploited kernel surface; libuv and others fall back to
 * threads), modify_ldt (only 16-bit code and Wine need it) and TIOCSTI.
 */
const ALLOWED: readonly string[] = [
  // process and threads
  'arch_prctl', 'capget', 'capset', 'execve', 'execveat', 'exit', 'exit_group', 'fork', 'vfork',
  'get_robust_list', 'set_robust_list', 'get_thread_area', 'set_thread_area', 'set_tid_address',
  'getpid', 'getppid', 'gettid', 'getpgid', 'getpgrp', 'setpgid', 'getsid', 'setsid',
  'getuid', 'geteuid', 'getgid', 'getegid', 'getresuid', 'getresgid', 'getgroups',
  'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setgroups', 'setfsuid', 'setfsgid',
  'getpriority', 'setpriority', 'getrlimit', 'setrlimit', 'prlimit64', 'getrusage', 'prctl', 'rseq',
  'membarrier', 'seccomp', 'landlock_create_ruleset', 'landlock_add_rule', 'landlock_restrict_self',
  'kill', 'tkill', 'tgkill', 'pidfd_open', 'pidfd_send_signal', 'process_mrelease',
  'wait4', 'waitid', 'restart_syscall', 'uname', 'sysinfo', 'umask',
  'sched_yield', 'sched_getaffinity', 'sched_setaffinity', 'sched_getattr', 'sched_setattr',
  'sched_getparam', 'sched_setparam', 'sched_getscheduler', 'sched_setscheduler',
  'sched_get_priority_max', 'sched_get_priority_min', 'sched_rr_get_interval', 'getcpu',
  'ioprio_get', 'ioprio_set',
  // memory
  'brk', 'mmap', 'munmap', 'mremap', 'mprotect', 'madvise', 'mincore', 'msync', 'remap_file_pages',
  'mlock', 'mlock2', 'mlockall', 'munlock', 'munlockall', 'memfd_create', 'memfd_secret',
  'pkey_alloc', 'pkey_free', 'pkey_mprotect',
  // signals and time
  'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigpending', 'rt_sigsuspend', 'rt_sigtimedwait',
  'rt_sigqueueinfo', 'rt_tgsigqueueinfo', 'sigaltstack', 'pause', 'alarm', 'getitimer', 'setitimer',
  'nanosleep', 'clock_nanosleep', 'clock_gettime', 'clock_getres', 'gettimeofday', 'time', 'times',
  'timer_create', 'timer_delete', 'timer_gettime', 'timer_settime', 'timer_getoverrun',
  'timerfd_create', 'timerfd_gettime', 'timerfd_settime', 'signalfd', 'signalfd4',
  // synchronisation and event loops
  'futex', 'futex_waitv', 'eventfd', 'eventfd2', 'poll', 'ppoll', 'select', 'pselect6',
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2',
  'epoll_ctl_old', 'epoll_wait_old', 'inotify_init', 'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch',
  'fanotify_mark',
  // file descriptors and I/O
  'read', 'write', 'readv', 'writev', 'pread64', 'pwrite64', 'preadv', 'pwritev', 'preadv2', 'pwritev2',
  'lseek', 'close', 'close_range', 'dup', 'dup2', 'dup3', 'fcntl', 'flock', 'pipe', 'pipe2',
  'sendfile', 'splice', 'tee', 'vmsplice', 'copy_file_range', 'readahead', 'fadvise64',
  'fsync', 'fdatasync', 'sync', 'syncfs', 'sync_file_range', 'fallocate', 'ftruncate', 'truncate',
  'io_setup', 'io_destroy', 'io_submit', 'io_cancel', 'io_getevents', 'io_pgetevents',
  'getrandom',
  // files and directories
  'open', 'openat', 'openat2', 'creat', 'stat', 'fstat', 'lstat', 'newfstatat', 'statx', 'statfs', 'fstatfs',
  'access', 'faccessat', 'faccessat2', 'readlink', 'readlinkat', 'getdents', 'getdents64', 'getcwd',
  'chdir', 'fchdir', 'mkdir', 'mkdirat', 'rmdir', 'mknod', 'mknodat', 'link', 'linkat', 'symlink', 'symlinkat',
  'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2', 'chmod', 'fchmod', 'fchmodat',
  'chown', 'fchown', 'lchown', 'fchownat', 'utime', 'utimes', 'utimensat', 'futimesat',
  'getxattr', 'lgetxattr', 'fgetxattr', 'setxattr', 'lsetxattr', 'fsetxattr',
  'listxattr', 'llistxattr', 'flistxattr', 'removexattr', 'lremovexattr', 'fremovexattr',
  // sockets (socket itself is a rule below); network isolation is the netns's job
  'socketpair', 'bind', 'listen', 'accept', 'accept4', 'connect', 'shutdown', 'getsockname', 'getpeername',
  'getsockopt', 'setsockopt', 'sendto', 'recvfrom', 'sendmsg', 'recvmsg', 'sendmmsg', 'recvmmsg',
  // System V and POSIX IPC (scoped by the IPC namespace)
  'shmget', 'shmat', 'shmdt', 'shmctl', 'semget', 'semop', 'semtimedop', 'semctl',
  'msgget', 'msgsnd', 'msgrcv', 'msgctl', 'mq_open', 'mq_unlink', 'mq_timedsend', 'mq_timedreceive',
  'mq_notify', 'mq_getsetattr',
];

/** Harmless personality(2) values, as in Docker: PER_LINUX, PER_LINUX32, UNAME26 variants, and the query. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

export const defaultProfile: SeccompProfile = {
  defaultAction: errno(EPERM),
  newerSyscallAction: errno(ENOSYS),
  rules: [
    { names: ALLOWED, action: ALLOW },
    {
      names: ['clone'],
      action: ALLOW,
      // clone's flags are arg 0 on x86_64 and aarch64 (only s390 swaps them). The mask
      // lies in the low half, so the (always zero) upper half of the mask needs no check.
      args: [{ index: 0, op: 'masked_eq', value: CLONE_NAMESPACE_FLAGS, valueTwo: 0 }],
      comment: 'threads and fork, but no new namespaces',
    },
    {
      names: ['clone3'],
      action: errno(ENOSYS),
      // clone3's flags sit in a struct in user memory, which seccomp cannot read; ENOSYS
      // makes glibc fall back to clone, whose flags the rule above can inspect.
      comment: 'force the fallback to clone',
    },
    {
      names: ['socket'],
      action: errno(EAFNOSUPPORT),
      args: [{ index: 0, op: 'eq', value: AF_VSOCK, width: 32 }],
      comment: 'vsock reaches the hypervisor host, past the network namespace; look like a kernel without it',
    },
    { names: ['socket'], action: ALLOW },
    {
      names: ['ioctl'],
      action: errno(EPERM),
      args: [{ index: 1, op: 'eq', value: TIOCSTI, width: 32 }],
      comment: 'TIOCSTI injects input into a terminal that may be shared with the host',
    },
    { names: ['ioctl'], action: ALLOW },
    ...PERSONALITIES.map((p): SeccompRule => ({
      names: ['personality'],
      action: ALLOW,
      args: [{ index: 0, op: 'eq', value: p }],
    })),
  ],
};
