/**
 * Removing a store directory (a layer, a tmp/ leftover) that holds whatever an image put
 * there: read-only directories (a layer's 0555 /usr), symlinks to anywhere, hard links.
 * Nothing is followed: entries are looked at with lstat, a directory is made writable
 * through an fd opened O_NOFOLLOW | O_DIRECTORY (so a symlink swapped in cannot turn the
 * chmod onto its target), and the walk never leaves the device of the directory holding
 * the tree, so a mount on a leftover (an image look, rootfs.ts: a mount point's own dev is
 * the mounted filesystem's) is never descended into.
 */
import { closeSync, constants, fchmodSync, lstatSync, openSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';

export interface RemoveReport {
  /** Bytes of the regular files removed (a file hard-linked twice counted once). */
  bytes: number;
  /** Paths left because they are another filesystem (a mount) or could not be removed. */
  left: string[];
}

function makeWritable(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch {
    return; // not a directory any more; the removal below says what it is
  }
  try {
    fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
}

/** Removes p and everything below it; absent p is nothing to do. */
export function removeTree(p: string): RemoveReport {
  const report: RemoveReport = { bytes: 0, left: [] };
  if (!lstatSync(p, { throwIfNoEntry: false })) return report;
  const top = lstatSync(path.dirname(p), { bigint: true });
  const seen = new Set<bigint>();
  const walk = (at: string): boolean => {
    const st = lstatSync(at, { throwIfNoEntry: false, bigint: true });
    if (!st) return true;
    if (st.dev !== top.dev) {
      report.left.push(at);
      return false;
    }
    if (!st.isDirectory()) {
      if (st.isFile() && !seen.has(st.ino)) {
        seen.add(st.ino);
        report.bytes += Number(st.size);
      }
      try {
        unlinkSync(at);
        return true;
      } catch {
        report.left.push(at);
        return false;
      }
    }
    makeWritable(at);
    let all = true;
    for (const name of readdirSync(at)) all = walk(path.join(at, name)) && all;
    if (!all) return false;
    try {
      rmdirSync(at);
      return true;
    } catch {
      report.left.push(at);
      return false;
    }
  };
  walk(p);
  return report;
}
