/**
 * A layer blob as a stream of its uncompressed tar bytes, never all in memory: gzip
 * through node:zlib, zstd through Debian's `zstd` binary in the pipe (Node 20's zlib has
 * no zstd: zlib.createZstdDecompress arrived in Node 22.15), plain tar as it is. zstd
 * refuses frames whose window exceeds 128 MiB by default, so a hostile frame cannot make it
 * allocate gigabytes.
 *
 * The stream is hashed as it flows (the config's diff_id is the sha256 of the whole
 * uncompressed tar, its trailing zero blocks included): `drain` reads what the tar reader
 * left after the end-of-archive marker into the hash, bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ArchiveBoundError, ArchiveError } from '../../../../common/archive/index.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** The compression a layer media type names (OCI and Docker), or undefined for one we do not know. */
export function compressionOf(mediaType: string): Compression | undefined {
  if (/^application\/vnd\.oci\.image\.layer\.(nondistributable\.)?v1\.tar(\+(gzip|zstd))?$/.test(mediaType)) {
    return mediaType.endsWith('+gzip') ? 'gzip' : mediaType.endsWith('+zstd') ? 'zstd' : 'none';
  }
  if (mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip' || mediaType === 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip') return 'gzip';
  if (mediaType === 'application/vnd.docker.image.rootfs.diff.tar') return 'none';
  return undefined;
}

const READ_CHUNK = 256 * 1024;

export class LayerStream implements AsyncIterable<Buffer> {
  private readonly hash = createHash('sha256');
  /** Uncompressed bytes read so far. */
  bytes = 0;
  private readonly it: AsyncIterator<Buffer>;
  private readonly stderr: Buffer[] = [];
  private exited: Promise<number | null> | undefined;

  private constructor(
    out: Readable,
    private readonly streams: Readable[],
    private readonly child: ChildProcess | undefined,
    private readonly maxBytes: number,
  ) {
    this.it = out[Symbol.asyncIterator]();
    if (child) {
      this.exited = new Promise((resolve) => {
        child.once('close', (code) => resolve(code));
        child.once('error', (err) => {
          out.destroy(new Error(`cannot run zstd: ${err.message}`));
          resolve(-1);
        });
      });
      child.stderr!.on('data', (c: Buffer) => {
        if (this.stderr.reduce((n, b) => n + b.length, 0) < 4096) this.stderr.push(c);
      });
    }
  }

  static open(blob: string, compression: Compression, maxBytes: number): LayerStream {
    if (compression === 'zstd') {
      const fd = openSync(blob, 'r');
      try {
        const child = spawn('zstd', ['-d', '-c', '-q', '--no-progress'], { stdio: [fd, 'pipe', 'pipe'] });
        return new LayerStream(child.stdout!, [child.stdout!], child, maxBytes);
      } finally {
        closeSync(fd); // the child has its own copy
      }
    }
    const file = createReadStream(blob, { highWaterMark: READ_CHUNK });
    if (compression === 'none') return new LayerStream(file, [file], undefined, maxBytes);
    const gunzip = createGunzip({ chunkSize: 64 * 1024 });
    file.on('error', (err) => gunzip.destroy(err));
    file.pipe(gunzip);
    return new LayerStream(gunzip, [file, gunzip], undefined, maxBytes);
  }

  private async next(): Promise<IteratorResult<Buffer>> {
    let r: IteratorResult<Buffer>;
    try {
      r = await this.it.next();
    } catch (err) {
      throw new ArchiveError(`the layer is not valid compressed data (${(err as Error).message})`);
    }
    if (!r.done) {
      this.bytes += r.value.length;
      if (this.bytes > this.maxBytes) throw new ArchiveBoundError('maxUnpackedBytes', this.maxBytes, 'the uncompressed layer stream is larger than its bounds allow');
      this.hash.update(r.value);
    }
    return r;
  }

  /** The tar reader's view: closing it early (at the end-of-archive marker) leaves the rest for drain(). */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return { next: () => this.next(), return: async () => ({ done: true, value: undefined }) };
  }

  /**
   * Reads the rest into the hash and returns "sha256:<hex>" of the whole uncompressed
   * stream. What follows the end-of-archive marker is padding (GNU tar fills its last
   * 10 KiB record); more than maxTrailing of it is refused, not hashed for ever.
   */
  async drain(maxTrailing = 1024 * 1024): Promise<string> {
    const limit = this.bytes + maxTrailing;
    while (!(await this.next()).done) {
      if (this.bytes > limit) throw new ArchiveBoundError('trailing bytes', maxTrailing, 'the layer has more than padding after its end-of-archive marker');
    }
    if (this.exited) {
      const code = await this.exited;
      if (code !== 0) {
        const why = Buffer.concat(this.stderr).toString('utf8').trim().split('\n').pop() ?? '';
        throw new ArchiveError(`the layer is not valid zstd data (zstd exited ${code}${why ? `: ${why}` : ''})`);
      }
    }
    return `sha256:${this.hash.digest('hex')}`;
  }

  /**
   * The error to report for a failure while reading: zstd's own word when it failed (the
   * tar reader then only saw a short or empty stream), else the failure itself.
   */
  async explain(err: unknown): Promise<unknown> {
    if (!this.exited || !(err instanceof ArchiveError)) return err;
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([this.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 2000)))]);
    clearTimeout(timer);
    if (code === null || code === 0) return err;
    const why = Buffer.concat(this.stderr).toString('utf8').trim().split('\n').pop() ?? '';
    return new ArchiveError(`the layer is not valid zstd data (zstd exited ${code}${why ? `: ${why}` : ''})`);
  }

  /** Stops everything (idempotent): the streams destroyed, the zstd child killed by its pid. */
  destroy(): void {
    for (const s of this.streams) s.destroy();
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
