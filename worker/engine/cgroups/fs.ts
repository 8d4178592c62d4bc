import { readFileSync, writeFileSync, mkdirSync, rmdirSync, renameSync, existsSync, readdirSync, openSync, readSync, writeSync, closeSync } from 'node:fs';

/** An open cgroup file, for the few files whose semantics are per open file (memory.peak). */
export interface CgroupFile {
  /** The whole content, read from offset 0. */
  read(): string;
  write(value: string): void;
  close(): void;
}

/**
 * The handful of file operations the drivers use. Production passes realFs; unit tests
 * pass realFs pointed at a fabricated cgroupfs tree in a temp dir (wrapped to record
 * writes and to play the kernel's part), so the same driver logic runs in both.
 */
export interface CgroupFs {
  read(path: string): string;
  write(path: string, value: string): void;
  /** Opened read-write; fails when the file is read-only (e.g. memory.peak before Linux 6.12). */
  open(path: string): CgroupFile;
  mkdir(path: string): void;
  rmdir(path: string): void;
  /** Within one parent (cgroup v1 renames nothing else; cgroup v2 refuses every rename). */
  rename(from: string, to: string): void;
  exists(path: string): boolean;
  /** Names of the sub-directories; [] when path does not exist. */
  dirs(path: string): string[];
}

export const realFs: CgroupFs = {
  read: (p) => readFileSync(p, 'utf8'),
  // One write(2) per value: cgroupfs parses each write on its own.
  write: (p, v) => writeFileSync(p, v),
  open: (p) => {
    const fd = openSync(p, 'r+');
    return {
      read() {
        const buf = Buffer.alloc(4096);
        const n = readSync(fd, buf, 0, buf.length, 0);
        return buf.subarray(0, n).toString('utf8');
      },
      write(v) {
        writeSync(fd, v, 0);
      },
      close() {
        closeSync(fd);
      },
    };
  },
  mkdir: (p) => mkdirSync(p),
  rmdir: (p) => rmdirSync(p),
  rename: (a, b) => renameSync(a, b),
  exists: (p) => existsSync(p),
  dirs: (p) => {
    try {
      return readdirSync(p, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  },
};
