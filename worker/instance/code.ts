/**
 * Function code as content-addressed layers: each version's code is unpacked once per
 * worker into <stateDir>/layers/code/<digest>/ and shared, read-only, by every container
 * of that version (mounted at /var/task). Unpacking is off the hot path: the first
 * invocation of a version on a worker pays it, later ones find the directory.
 *
 * Unpacking is faasbox's own (common/archive), with the bounds and rules the gateway
 * checked the package with at deploy; nothing is shelled out. A layer is removed when its
 * code is gone from the registry (the last function using it was deleted) and no
 * invocation on this worker holds it (pin/unpin around each invocation); a worker that
 * missed the delete sweeps such layers at its start.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ArchiveError, DEFAULT_UNPACK_BOUNDS, pathParts, TreeWriter, unpackArchive, type UnpackBounds } from '../../common/archive/index.js';
import { CodeUnpackFailedError } from '../../common/errors.js';
import { entryParts } from '../../common/function-spec.js';

export type CodeFormat = 'file' | 'tar.gz' | 'zip';

export interface CodeSource {
  digest: string;
  format: CodeFormat;
  /** Single-file source, or the archive's bytes. */
  bytes: Buffer;
  /** For 'file': the entry path to store it under inside /var/task (nested paths are fine). */
  filename?: string;
}


export class CodeStore {
  private readonly root: string;
  private readonly pending = new Map<string, Promise<string>>();
  /** Digests seen unpacked, so that has() costs no stat per call. */
  private readonly present = new Set<string>();
  /** Invocations in flight per digest: a layer they use is not removed under them. */
  private readonly pins = new Map<string, number>();
  /** Digests whose code is gone: removed at the last unpin. */
  private readonly doomed = new Set<string>();

  constructor(
    stateDir: string,
    private readonly bounds: UnpackBounds = DEFAULT_UNPACK_BOUNDS,
  ) {
    this.root = path.join(stateDir, 'layers', 'code');
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
  }

  dirFor(digest: string): string {
    if (!/^[a-f0-9]{16,128}$/.test(digest)) throw new CodeUnpackFailedError(digest, 'its digest is not hex');
    return path.join(this.root, digest);
  }

  /** The layer dir for this code, unpacking it first if needed. Concurrent callers share one unpack. */
  materialize(src: CodeSource): Promise<string> {
    const dir = this.dirFor(src.digest);
    this.doomed.delete(src.digest); // deployed again since
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

  /** An invocation uses the layer until the pin is disposed (or unpin()). */
  pin(digest: string): Disposable {
    this.pins.set(digest, (this.pins.get(digest) ?? 0) + 1);
    return {
      [Symbol.dispose]: () => {
        this.unpin(digest).catch((err: Error) => console.error(`code store: removing layer ${digest}: ${err.message}`));
      },
    };
  }

  unpin(digest: string): Promise<void> {
    const n = (this.pins.get(digest) ?? 1) - 1;
    if (n > 0) {
      this.pins.set(digest, n);
      return Promise.resolve();
    }
    this.pins.delete(digest);
    return this.doomed.has(digest) ? this.remove(digest) : Promise.resolve();
  }

  /** The code is gone from the registry: its layer goes now, or when its last invocation here ends. */
  discard(digest: string): Promise<void> {
    this.doomed.add(digest);
    return this.pins.has(digest) ? Promise.resolve() : this.remove(digest);
  }

  /**
   * Layers whose code no function uses any more (`inUse` false), left by an earlier life of
   * a worker on this state dir that missed the delete, and removals a crash cut short.
   */
  async sweep(inUse: (digest: string) => Promise<boolean>): Promise<string[]> {
    const removed: string[] = [];
    for (const name of readdirSync(this.root)) {
      if (name.startsWith('.gone-')) {
        await rm(path.join(this.root, name), { recursive: true, force: true });
      } else if (/^[a-f0-9]{16,128}$/.test(name) && !this.pins.has(name) && !this.pending.has(name) && !(await inUse(name))) {
        await this.remove(name);
        removed.push(name);
      }
    }
    return removed;
  }

  private async remove(digest: string): Promise<void> {
    // An unpack in flight (a pre-pull) would otherwise land after the removal and stay.
    await this.pending.get(digest)?.catch(() => {});
    if (this.pins.has(digest)) return; // an invocation took it meanwhile: its unpin removes it
    this.doomed.delete(digest);
    this.present.delete(digest);
    const dir = this.dirFor(digest);
    // Renamed first, so that a materialize() from now on unpacks afresh instead of
    // finding a directory half removed.
    const gone = path.join(this.root, `.gone-${digest}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(dir, gone);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await rm(gone, { recursive: true, force: true });
  }

  private async unpack(src: CodeSource, dir: string): Promise<string> {
    const tmp = mkdtempSync(path.join(this.root, '.unpack-'));
    try {
      if (src.format === 'file') {
        const parts = entryParts(src.filename ?? 'index.mjs');
        const writer = TreeWriter.open(tmp);
        try {
          const p = pathParts(parts.join('/'), this.bounds);
          await writer.write({ parts: p, path: p.join('/'), type: 'file', mode: 0o644, size: src.bytes.length, body: async function* () { yield src.bytes; } });
        } finally {
          writer.close();
        }
      } else {
        await unpackArchive(src.format, src.bytes, tmp, this.bounds);
      }
      chmodSync(tmp, 0o755);
      renameSync(tmp, dir);
      return dir;
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (existsSync(dir)) return dir; // another worker on this state dir won the race
      // Archive errors name the member and the rule; anything else is told by its code only
      // (an fs error's message would show this worker's paths).
      const reason = err instanceof ArchiveError ? err.message : ((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      throw new CodeUnpackFailedError(src.digest, reason);
    }
  }
}
