/**
 * What one function may hold in Redis. Without these a caller could fill Redis: every
 * async job keeps its body until it runs, every invocation leaves a record for 24 h, every
 * deploy keeps a version of up to 10 MiB of code until the function is deleted.
 *
 * One object for gateway, worker and the CLI (which reads it from the environment and the
 * config file); the defaults are for a single machine with a few GiB given to Redis.
 */

export interface StorageLimits {
  /** Bytes of async invocation bodies a function may have accepted and not yet finished (429 QUEUE_FULL beyond). */
  queuedBytesPerFunction: number;
  /** Invocation records kept per function; the oldest go first beyond it. */
  recordsPerFunction: number;
  /** Versions kept per function; a deploy beyond it prunes the oldest versions other than the function's current one and the one it replaced. */
  versionsPerFunction: number;
  /** Finished async jobs (BullMQ's, body included) kept for inspection, on top of their age limit. */
  completedJobsKept: number;
  /** Failed jobs kept, on top of their age limit. */
  failedJobsKept: number;
  /** Dead letters kept per function (common/delivery/dead-letters.ts); the oldest go first beyond it. */
  deadLettersPerFunction: number;
}

export const DEFAULT_STORAGE_LIMITS: StorageLimits = {
  // Eleven 6 MiB bodies, or about 64k small events, per function.
  queuedBytesPerFunction: 64 * 1024 * 1024,
  // About 13 MB of records per function at their measured 1.3 KB each.
  recordsPerFunction: 10_000,
  versionsPerFunction: 10,
  completedJobsKept: 1000,
  failedJobsKept: 1000,
  // Each holds its event: at most a 6 MiB body, mostly small ones.
  deadLettersPerFunction: 10_000,
};

/** Environment variable -> limit. */
export const STORAGE_LIMITS_ENV = {
  FAASBOX_QUEUED_BYTES_PER_FUNCTION: 'queuedBytesPerFunction',
  FAASBOX_RECORDS_PER_FUNCTION: 'recordsPerFunction',
  FAASBOX_VERSIONS_PER_FUNCTION: 'versionsPerFunction',
  FAASBOX_COMPLETED_JOBS_KEPT: 'completedJobsKept',
  FAASBOX_FAILED_JOBS_KEPT: 'failedJobsKept',
  FAASBOX_DEAD_LETTERS_PER_FUNCTION: 'deadLettersPerFunction',
} as const satisfies Record<string, keyof StorageLimits>;

/** The limits, each a positive integer; a bad one is named. */
export function storageLimits(overrides: Partial<StorageLimits> = {}): StorageLimits {
  const limits = { ...DEFAULT_STORAGE_LIMITS, ...overrides };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`storage limit ${key} must be a positive integer, not ${String(value)}`);
  }
  return limits;
}
