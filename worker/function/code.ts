/**
 * Function code as content-addressed layers: each version's code is unpacked once per
 * worker into <stateDir>/layers/code/<digest>/ and shared, read-only, by every container
 * of that version (mounted at /var/task). Unpacking is off the hot path: the first
 * invocation of a version on a worker pays it, later ones find the directory.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type CodeFormat = 'file' | 'tar.gz' | 'zip';

export interface CodeSource {
  digest: string;
  format: CodeFormat;
  /** Single-file source, or the archive's bytes. */
  bytes: Buffer;
  /** For 'file': the name to store it under inside /var/task. */
  filename?: string;
}

export class CodeUnpackError extends Error {
  readonly code = 'CODE_UNPACK_FAILED';
  constructor(digest: string, cause: unknown) {
    super(`could not unpack code ${digest}: ${(cause as Error).message ?? cause}; check that the package is a valid ${'tar.gz or zip'} archive`, { cause });
    this.name = 'CodeUnpackError';
  }
}

export class CodeStore {
  private readonly root: string;
  private readonly pending = new Map<string, Promise<string>>();
  /** Digests seen unpacked: layers are immutable and never removed while the worker runs. */
  private readonly present = new Set<string>();

  constructor(stateDir: string) {
    this.root = path.join(stateDir, 'layers', 'code');
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
  }

  dirFor(digest: string): string {
    if (!/^[a-f0-9]{16,128}$/.test(digest)) throw new CodeUnpackError(digest, new Error('digest must be hex'));
    return path.join(this.root, digest);
  }

  /** The layer dir for this code, unpacking it first if needed. Concurrent callers share one unpack. */
  materialize(src: CodeSource): Promise<string> {
    const dir = this.dirFor(src.digest);
    if (existsSync(dir)) return Promise.resolve(dir);
    let p = this.pending.get(src.digest);
    if (!p) {
      p = this.unpack(src, dir).finally(() => this.pending.delete(src.digest));
      this.pending.set(src.digest, p);
    }
    return p;
  }

  /** Asked on every invocation, so a layer found once is remembered (no stat per call). */
  has(digest: string): boolean {
    if (this.present.has(digest)) return true;
    if (!existsSync(this.dirFor(digest))) return false;
    this.present.add(digest);
    return true;
  }

  private async unpack(src: CodeSource, dir: string): Promise<string> {
    const tmp = mkdtempSync(path.join(this.root, '.unpack-'));
    try {
      if (src.format === 'file') {
        const name = src.filename ?? 'index.mjs';
        if (name.includes('/') || name.startsWith('.')) throw new Error(`bad file name ${name}`);
        writeFileSync(path.join(tmp, name), src.bytes, { mode: 0o644 });
      } else {
        const archive = path.join(this.root, `.${path.basename(tmp)}.archive`);
        writeFileSync(archive, src.bytes);
        try {
          // GNU tar refuses absolute names and '..' members by default; owners and
          // modes from the archive are not trusted.
          if (src.format === 'tar.gz') {
            await run('tar', ['-xzf', archive, '-C', tmp, '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir']);
          } else {
            await run('busybox', ['unzip', '-q', '-o', archive, '-d', tmp]);
          }
        } finally {
          rmSync(archive, { force: true });
        }
        await run('chmod', ['-R', 'u=rwX,go=rX', tmp]);
      }
      chmodSync(tmp, 0o755);
      renameSync(tmp, dir);
      return dir;
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (existsSync(dir)) return dir; // another worker on this state dir won the race
      throw new CodeUnpackError(src.digest, err);
    }
  }
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
