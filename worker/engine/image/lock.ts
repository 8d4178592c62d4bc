/**
 * Exclusive lock files for the image store, between processes (a CLI pull beside a
 * worker's): created with O_EXCL, holding "<pid> <start time>" of the holder. A lock whose
 * holder is gone (no such pid, or the pid now names a process started at another time: the
 * pid was reused) is stale and taken over; so a pull SIGKILLed while holding one blocks
 * nobody. Within one process the callers share promises (pull.ts), so a holder never
 * waits on itself for long; the lock is only the cross-process half.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** The start time of pid (field 22 of /proc/<pid>/stat, in clock ticks since boot); undefined when it is gone. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

const SELF = `${process.pid} ${processStart(process.pid) ?? '?'}`;

/** Whether the lock file's holder is alive (an unreadable or half-written file counts as alive while young). */
export function lockHolderAlive(file: string, youngMs = 10_000): boolean {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
  const [pid, start] = text.trim().split(' ');
  if (!pid || !start) {
    // Between the O_EXCL create and the write of its content: give it a moment.
    const age = Date.now() - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    return age < youngMs;
  }
  const now = processStart(Number(pid));
  return now !== undefined && (start === '?' || now === start);
}

function tryCreate(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, `${SELF}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** One attempt: the lock taken (a stale one removed first), or false while a live holder has it. */
export function tryLock(file: string): boolean {
  if (tryCreate(file)) return true;
  if (lockHolderAlive(file)) return false;
  // Stale. Two takers may both see it so, and one's rm could remove the lock the other has
  // just made: the removal itself is done under a second lock (file.break), whose holder
  // looks again before removing. A breaker that died leaves file.break, taken over when old.
  const breaker = `${file}.break`;
  if (!tryCreate(breaker)) {
    const age = Date.now() - (statSync(breaker, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > 10_000) rmSync(breaker, { force: true });
    return false;
  }
  try {
    if (!lockHolderAlive(file)) rmSync(file, { force: true });
    return tryCreate(file);
  } finally {
    rmSync(breaker, { force: true });
  }
}

export interface Lock {
  release(): void;
}

function held(file: string): Lock {
  let done = false;
  return {
    release() {
      if (done) return;
      done = true;
      rmSync(file, { force: true });
    },
  };
}

/** Waits (polling every pollMs) until the lock is this process's; rejects on abort. */
export async function acquireLock(file: string, opts: { pollMs?: number; signal?: AbortSignal | undefined } = {}): Promise<Lock> {
  for (;;) {
    if (tryLock(file)) return held(file);
    opts.signal?.throwIfAborted();
    await sleep(opts.pollMs ?? 100);
  }
}

const sab = new Int32Array(new SharedArrayBuffer(4));

/**
 * The same, blocking, for sync writers of a small file (the tags file): its holders hold it
 * for one read-modify-rename, so the wait is short; a holder that died is taken over.
 */
export function acquireLockSync(file: string, timeoutMs = 30_000): Lock {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (tryLock(file)) return held(file);
    if (Date.now() > end) throw new Error(`the lock ${file} is still held by a live process after ${timeoutMs} ms`);
    Atomics.wait(sab, 0, 0, 20);
  }
}
