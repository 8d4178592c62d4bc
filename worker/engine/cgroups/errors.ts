/**
 * The one error type of the cgroups module. Like the Firecracker jailer's errors it
 * names the path that failed, carries the underlying cause (an errno from cgroupfs),
 * and ends with a hint for the operator.
 */
export type CgroupErrorCode =
  | 'CGROUP_EXISTS'
  | 'CGROUP_NOT_FOUND'
  | 'CGROUP_IO'
  | 'CGROUP_BUSY'
  | 'CGROUP_INVALID_NAME'
  | 'CGROUP_INVALID_LIMIT'
  | 'CGROUP_UNSUPPORTED';

const DEFAULT_HINTS: Record<CgroupErrorCode, string> = {
  CGROUP_EXISTS: 'a container with this id exists or a crashed worker left it; run garbage collection (faasbox ctr gc)',
  CGROUP_NOT_FOUND: 'the cgroup was removed underneath us (destroyed twice, or garbage-collected by another worker)',
  CGROUP_IO: 'check that the worker runs as root and that the cgroup filesystems are mounted read-write',
  CGROUP_BUSY: 'processes may still be in the cgroup (a task stuck in uninterruptible sleep cannot die)',
  CGROUP_INVALID_NAME: 'cgroup names are one path component of letters, digits, "_", "-" and "."',
  CGROUP_INVALID_LIMIT: 'limits are whole bytes, microseconds or tasks; a negative or infinite value means no limit where the kernel allows one',
  CGROUP_UNSUPPORTED: 'faasbox needs the memory, cpu and pids controllers (v1 also cpuacct and freezer)',
};

export class CgroupError extends Error {
  readonly path: string;
  constructor(
    readonly code: CgroupErrorCode,
    path: string,
    message: string,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    const errno = (options.cause as NodeJS.ErrnoException | undefined)?.code;
    const hint = options.hint ?? DEFAULT_HINTS[code];
    super(`${message} (${path})${errno ? `: ${errno}` : ''}; hint: ${hint}`, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'CgroupError';
    this.path = path;
  }
}

export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
