export type CgroupErrorCode = 'CGROUP_EXISTS' | 'CGROUP_NOT_FOUND' | 'CGROUP_IO' | 'CGROUP_BUSY' | 'CGROUP_UNSUPPORTED';

/** A cgroup operation failed: the path, the cause, and a hint. */
export class CgroupError extends Error {
  constructor(
    readonly code: CgroupErrorCode,
    readonly path: string,
    message: string,
    options?: { cause?: unknown; hint?: string },
  ) {
    const cause = options?.cause as NodeJS.ErrnoException | undefined;
    super(`${message} (${path})${cause?.code ? `: ${cause.code}` : ''}${options?.hint ? `; ${options.hint}` : ''}`, options?.cause ? { cause: options.cause } : undefined);
    this.name = 'CgroupError';
  }
}
