/**
 * Writes checked members under a root directory with openat-style semantics: every
 * lookup starts at an open directory fd (through /proc/self/fd/N/<name>, which the kernel
 * resolves from that fd) and every component is opened with O_NOFOLLOW | O_DIRECTORY, so
 * a symlink or a file in a member's parent path makes the kernel refuse (ELOOP, ENOTDIR)
 * instead of being followed, whatever rules.ts let through. Files are created O_EXCL, so
 * nothing already there is overwritten or opened through a link.
 *
 * Owners are the writer's (root for the worker), modes are those rules.ts decided.
 */
import { closeSync, constants, fchmodSync, linkSync, mkdirSync, openSync, promises as fsp, symlinkSync } from 'node:fs';
import { ArchiveError } from './errors.js';
import type { CheckedEntry } from './rules.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_WRONLY, O_CREAT, O_EXCL } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

const at = (fd: number, name: string) => `/proc/self/fd/${fd}/${name}`;

/** An OS error, told without the /proc path it was raised on. */
function failed(member: string, what: string, err: unknown): ArchiveError {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  if (code === 'ELOOP' || code === 'ENOTDIR') return new ArchiveError(`${what}: its path goes through a symlink or a file`, member);
  if (code === 'EEXIST') return new ArchiveError(`${what}: it exists already`, member);
  return new ArchiveError(`${what}: ${code}`, member);
}

export class TreeWriter {
  private constructor(private rootFd: number) {}

  /** root must be a directory (not a symlink to one) that the caller created for this. */
  static open(root: string): TreeWriter {
    return new TreeWriter(openSync(root, DIR_FLAGS));
  }

  close(): void {
    if (this.rootFd >= 0) closeSync(this.rootFd);
    this.rootFd = -1;
  }

  /** Opens parts' parent directory, creating missing ones; the caller closes the fd. */
  private openParent(parts: string[], member: string): number {
    let fd = this.rootFd;
    try {
      for (let i = 0; i < parts.length - 1; i++) {
        const name = parts[i]!;
        let next: number;
        try {
          next = openSync(at(fd, name), DIR_FLAGS);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          mkdirSync(at(fd, name), 0o755);
          next = openSync(at(fd, name), DIR_FLAGS);
          fchmodSync(next, 0o755);
        }
        if (fd !== this.rootFd) closeSync(fd);
        fd = next;
      }
      return fd;
    } catch (err) {
      if (fd !== this.rootFd) closeSync(fd);
      throw failed(member, 'cannot open its parent directory', err);
    }
  }

  async write(e: CheckedEntry): Promise<void> {
    const name = e.parts[e.parts.length - 1]!;
    const dir = this.openParent(e.parts, e.path);
    try {
      switch (e.type) {
        case 'dir': {
          try {
            mkdirSync(at(dir, name), 0o755);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw failed(e.path, 'cannot create the directory', err);
          }
          // Opened without following: an existing symlink of that name is refused here.
          let fd: number;
          try {
            fd = openSync(at(dir, name), DIR_FLAGS);
          } catch (err) {
            throw failed(e.path, 'cannot open the directory', err);
          }
          try {
            fchmodSync(fd, e.mode);
          } finally {
            closeSync(fd);
          }
          return;
        }
        case 'file': {
          let fh: fsp.FileHandle;
          try {
            fh = await fsp.open(at(dir, name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, e.mode);
          } catch (err) {
            throw failed(e.path, 'cannot create the file', err);
          }
          try {
            for await (const chunk of e.body()) {
              try {
                for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off)).bytesWritten;
              } catch (err) {
                throw failed(e.path, 'cannot write the file', err);
              }
            }
            await fh.chmod(e.mode); // the umask had its say at open
          } finally {
            await fh.close();
          }
          return;
        }
        case 'symlink':
          try {
            symlinkSync(e.linkTarget!, at(dir, name));
          } catch (err) {
            throw failed(e.path, 'cannot create the symlink', err);
          }
          return;
        case 'hardlink': {
          const src = this.openParent(e.linkParts!, e.path);
          try {
            // link(2) does not follow a symlink as its source; rules.ts has checked it names a file.
            linkSync(at(src, e.linkParts![e.linkParts!.length - 1]!), at(dir, name));
          } catch (err) {
            throw failed(e.path, 'cannot create the hard link', err);
          } finally {
            if (src !== this.rootFd) closeSync(src);
          }
          return;
        }
      }
    } finally {
      if (dir !== this.rootFd) closeSync(dir);
    }
  }
}
