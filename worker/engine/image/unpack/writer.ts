/**
 * Writes a layer's members into its directory with the kernel keeping every path inside:
 * a member's parent is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from
 * the layer root's fd, so a symlinked parent (`evil -> /etc`, then `evil/passwd`) resolves
 * to the layer's own etc/, never the host's, and ".." cannot climb above the root. The
 * member itself is then created by name in that parent (O_EXCL | O_NOFOLLOW, mknodat,
 * symlink, link), never through a symlink of that name: a later member replacing an
 * earlier one removes it first. Hard links name their source the same way, so one can only
 * link to a file of this layer.
 *
 * Whiteouts become what OverlayFS reads natively in a lower dir: a 0/0 character device,
 * and trusted.overlay.opaque=y on an opaque directory (set after the last member, so the
 * marker applies wherever it sits in the tar). Directory mtimes are set at the end too:
 * creating a directory's children changes it.
 */
import { closeSync, constants, linkSync, lstatSync, lutimesSync, mkdirSync, promises as fsp, rmSync, symlinkSync, lchownSync, chmodSync, utimesSync } from 'node:fs';
import { ArchiveError } from '../../../../common/archive/index.js';
import {
  atPath, lsetxattr, mknodat, openat2, O_DIRECTORY, O_NOFOLLOW, O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, S_IFCHR, S_IFIFO,
} from '../../sys/at.js';
import { SyscallError } from '../../sys/errors.js';
import type { LayerOp, Meta, Parts } from './rules.js';

const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
const OPAQUE_XATTR = 'trusted.overlay.opaque';

function errnoOf(err: unknown): string | undefined {
  if (err instanceof SyscallError) return err.errnoName;
  return (err as NodeJS.ErrnoException).code;
}

/** An OS error told with the member's name, never the host path it was raised on. */
function failed(member: string, what: string, err: unknown): ArchiveError {
  if (err instanceof ArchiveError) return err;
  const code = errnoOf(err) ?? 'error';
  if (code === 'ENOTDIR') return new ArchiveError(`${what}: its path goes through a file`, member);
  if (code === 'ELOOP' || code === 'EXDEV') return new ArchiveError(`${what}: its path goes through a link the layer may not follow`, member);
  return new ArchiveError(`${what}: ${code}`, member);
}

export class LayerWriter {
  private readonly dirTimes: { path: string; mtime: number }[] = [];
  private readonly opaque = new Set<string>();

  private constructor(private rootFd: number, private readonly onImplicitDir: (member: string) => void) {}

  /** root: an empty directory the caller made for this layer (and removes on failure). */
  static open(root: string, onImplicitDir: (member: string) => void): LayerWriter {
    return new LayerWriter(openat2(-100 /* AT_FDCWD */, root, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, 'the layer root'), onImplicitDir);
  }

  close(): void {
    if (this.rootFd >= 0) closeSync(this.rootFd);
    this.rootFd = -1;
  }

  /** Opens a directory of the layer (resolved inside it), or undefined when it does not exist. */
  private resolveDir(parts: Parts, member: string): number | undefined {
    if (parts.length === 0) return openat2(this.rootFd, '.', O_PATH | O_DIRECTORY, IN_ROOT);
    try {
      return openat2(this.rootFd, parts.join('/'), O_PATH | O_DIRECTORY, IN_ROOT, member);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw failed(member, 'cannot open its parent directory', err);
    }
  }

  /** Opens (creating what is missing, as tar does) the directory parts; the caller closes it. */
  private openDir(parts: Parts, member: string): number {
    const fd = this.resolveDir(parts, member);
    if (fd !== undefined) return fd;
    // Walk down from the deepest existing prefix. Each prefix is resolved by the kernel from
    // the root, so a missing component is created in the directory a symlink led to, if any.
    let parent = this.openDir(parts.slice(0, -1), member);
    try {
      const name = parts[parts.length - 1]!;
      try {
        mkdirSync(atPath(parent, name), 0o755);
      } catch (err) {
        // Exists but did not resolve: a symlink leading to nothing in the layer.
        if (errnoOf(err) === 'EEXIST') throw new ArchiveError(`its path goes through ${JSON.stringify(parts.join('/'))}, a link to nothing inside the layer`, member);
        throw failed(member, 'cannot create its parent directory', err);
      }
      this.onImplicitDir(member);
    } finally {
      closeSync(parent);
    }
    parent = this.resolveDir(parts, member) ?? -1;
    if (parent < 0) throw new ArchiveError('its parent directory vanished while unpacking', member);
    return parent;
  }

  /**
   * Removes whatever the layer has at name in dir (a later member replaces an earlier one),
   * but a directory when keepDir (a directory member over a directory merges, as tar does).
   * True when a directory was kept.
   */
  private clear(dir: number, name: string, keepDir: boolean): boolean {
    const st = lstatSync(atPath(dir, name), { throwIfNoEntry: false });
    if (!st) return false;
    if (st.isDirectory() && keepDir) return true;
    rmSync(atPath(dir, name), { recursive: true, force: true });
    return false;
  }

  /** Owner, then mode (chown clears setuid), then xattrs (chown clears file capabilities). */
  private applyMeta(path: string, meta: Meta, symlink: boolean): void {
    lchownSync(path, meta.uid, meta.gid);
    if (symlink) return; // a symlink's mode is meaningless and user.* xattrs are refused on it
    chmodSync(path, meta.mode);
    for (const [k, v] of meta.xattrs) lsetxattr(path, k, v, k);
  }

  async write(op: LayerOp, member: string): Promise<void> {
    if (op.op === 'skip') return;
    if (op.op === 'root') {
      const root = atPath(this.rootFd, '.');
      this.applyMeta(root, op.meta, false);
      this.dirTimes.push({ path: '.', mtime: op.meta.mtime });
      return;
    }
    if (op.op === 'opaque') {
      const fd = this.openDir(op.parts, member);
      closeSync(fd);
      this.opaque.add(op.parts.join('/') || '.');
      return;
    }
    const name = op.parts[op.parts.length - 1]!;
    const dir = this.openDir(op.parts.slice(0, -1), member);
    const at = atPath(dir, name);
    try {
      switch (op.op) {
        case 'whiteout':
          // A name this layer has itself stays (OCI: a whiteout hides the layers below only).
          if (!lstatSync(at, { throwIfNoEntry: false })) mknodat(dir, name, S_IFCHR, 0, 0, member);
          return;
        case 'dir':
          if (!this.clear(dir, name, true)) mkdirSync(at, 0o700);
          this.applyMeta(at, op.meta, false);
          this.dirTimes.push({ path: op.parts.join('/'), mtime: op.meta.mtime });
          return;
        case 'file': {
          this.clear(dir, name, false);
          const fh = await fsp.open(at, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
          try {
            for await (const chunk of op.body()) {
              for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off)).bytesWritten;
            }
          } finally {
            await fh.close();
          }
          this.applyMeta(at, op.meta, false);
          lutimesSync(at, op.meta.mtime, op.meta.mtime);
          return;
        }
        case 'fifo':
          this.clear(dir, name, false);
          mknodat(dir, name, S_IFIFO | 0o600, 0, 0, member);
          this.applyMeta(at, op.meta, false);
          lutimesSync(at, op.meta.mtime, op.meta.mtime);
          return;
        case 'symlink':
          this.clear(dir, name, false);
          symlinkSync(op.target, at);
          this.applyMeta(at, op.meta, true);
          lutimesSync(at, op.meta.mtime, op.meta.mtime);
          return;
        case 'hardlink': {
          const srcName = op.to[op.to.length - 1]!;
          const src = this.resolveDir(op.to.slice(0, -1), member);
          if (src === undefined) throw new ArchiveError(`hard link to ${JSON.stringify(op.to.join('/'))}, which is not in the layer`, member);
          try {
            let st;
            try {
              st = lstatSync(atPath(src, srcName));
            } catch {
              throw new ArchiveError(`hard link to ${JSON.stringify(op.to.join('/'))}, which is not in the layer`, member);
            }
            if (st.isDirectory()) throw new ArchiveError(`hard link to the directory ${JSON.stringify(op.to.join('/'))}`, member);
            const here = lstatSync(at, { throwIfNoEntry: false });
            if (here && here.ino === st.ino && here.dev === st.dev) return; // links to itself: nothing to do
            this.clear(dir, name, false);
            // link(2) does not follow a symlink as its source: the link is to the symlink.
            linkSync(atPath(src, srcName), at);
          } finally {
            closeSync(src);
          }
          return;
        }
      }
    } catch (err) {
      throw failed(member, `cannot write the ${op.op}`, err);
    } finally {
      closeSync(dir);
    }
  }

  /** A directory still there at the end, or undefined (a later member made it something else). */
  private finalDir(p: string): number | undefined {
    try {
      return this.resolveDir(p === '.' ? [] : p.split('/'), p);
    } catch {
      return undefined;
    }
  }

  /** After the last member: opaque markers, then directory mtimes, deepest first. */
  finish(): void {
    for (const p of this.opaque) {
      const fd = this.finalDir(p);
      if (fd === undefined) continue;
      try {
        lsetxattr(atPath(fd, '.'), OPAQUE_XATTR, Buffer.from('y'), p);
      } finally {
        closeSync(fd);
      }
    }
    for (let i = this.dirTimes.length - 1; i >= 0; i--) {
      const { path, mtime } = this.dirTimes[i]!;
      const fd = this.finalDir(path);
      if (fd === undefined) continue;
      try {
        utimesSync(atPath(fd, '.'), mtime, mtime);
      } finally {
        closeSync(fd);
      }
    }
  }
}
