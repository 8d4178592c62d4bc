/**
 * The image store's lock, <images>/lock, taken with flock(2): shared by whatever adds to the
 * store or starts using it (a pull from its first blob to its tag, a container create
 * writing its pin), exclusive for whatever removes from it (prune, rm). So prune never
 * deletes a blob a pull renamed into place a moment before writing the record that names
 * it, nor a layer a container is about to mount. flock rather than an O_EXCL lock file: the
 * kernel drops the lock of a process that dies, so a crash never leaves the store locked.
 *
 * (Node opens every file O_CLOEXEC, so no child inherits a hold.)
 *
 * Each acquisition opens its own file: flock locks belong to the open file, so two holders
 * in one process on one fd would release each other.
 */
import { closeSync, mkdirSync, openSync, constants } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError } from '../../../common/errors.js';
import { LOCK_EX, LOCK_SH, LOCK_UN, tryFlock } from '../sys/at.js';

export type LockMode = 'shared' | 'exclusive';

export const lockPath = (imagesDir: string): string => path.join(imagesDir, 'lock');

/** How long an acquisition waits by default: a prune's exclusive hold is short (it renames, then deletes unlocked). */
export const DEFAULT_LOCK_WAIT_MS = 60_000;

export interface StoreLock {
  readonly mode: LockMode;
  release(): void;
}

export interface LockOptions {
  waitMs?: number;
  signal?: AbortSignal;
}

function openLockFile(imagesDir: string): number {
  mkdirSync(imagesDir, { recursive: true, mode: 0o755 });
  return openSync(lockPath(imagesDir), constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
}

/** Takes the lock, polling (flock never blocks the event loop here); UNAVAILABLE when waitMs passes first. */
export async function acquireStoreLock(imagesDir: string, mode: LockMode, opts: LockOptions = {}): Promise<StoreLock> {
  const fd = openLockFile(imagesDir);
  const op = mode === 'shared' ? LOCK_SH : LOCK_EX;
  const deadline = Date.now() + (opts.waitMs ?? DEFAULT_LOCK_WAIT_MS);
  try {
    // 2 ms first (a prune's renames take about that), up to 100 ms between tries.
    for (let pause = 2; !tryFlock(fd, op, lockPath(imagesDir)); pause = Math.min(pause * 2, 100)) {
      opts.signal?.throwIfAborted();
      if (Date.now() >= deadline) {
        throw new UnavailableError(
          `the image store ${imagesDir} stayed locked for ${opts.waitMs ?? DEFAULT_LOCK_WAIT_MS} ms (${mode === 'shared' ? 'a prune or rm is removing from it' : 'a pull or a container create is using it'}); try again`,
        );
      }
      await sleep(pause);
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let held = true;
  return {
    mode,
    release() {
      if (!held) return;
      held = false;
      try {
        tryFlock(fd, LOCK_UN, lockPath(imagesDir));
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** fn with the lock held, released whatever fn does. */
export async function withStoreLock<T>(imagesDir: string, mode: LockMode, fn: () => T | Promise<T>, opts: LockOptions = {}): Promise<T> {
  const lock = await acquireStoreLock(imagesDir, mode, opts);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
