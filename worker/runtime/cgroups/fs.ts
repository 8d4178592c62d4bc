import { readFileSync, writeFileSync, mkdirSync, rmdirSync, existsSync, readdirSync, statSync } from 'node:fs';

/** The handful of file operations the drivers need; tests swap in a fabricated tree's root. */
export interface CgroupFs {
  read(path: string): string;
  write(path: string, value: string): void;
  mkdir(path: string): void;
  rmdir(path: string): void;
  exists(path: string): boolean;
  /** Sub-directory names. */
  dirs(path: string): string[];
}

export const realFs: CgroupFs = {
  read: (p) => readFileSync(p, 'utf8'),
  // One write(2) per value: cgroupfs parses each write as a whole.
  write: (p, v) => writeFileSync(p, v),
  mkdir: (p) => mkdirSync(p),
  rmdir: (p) => rmdirSync(p),
  exists: (p) => existsSync(p),
  dirs: (p) => {
    try {
      return readdirSync(p).filter((n) => statSync(`${p}/${n}`).isDirectory());
    } catch {
      return [];
    }
  },
};
