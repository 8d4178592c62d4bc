/**
 * An image made ready to run: its layers unpacked (layers.ts), its config blob read and
 * checked (config.ts), and its account files and WorkingDir looked at inside the image's
 * own rootfs. That rootfs is the layer stack as OverlayFS presents it (a whiteout hides
 * /etc/passwd just as in the container), mounted read-only for the look and unmounted in
 * `finally`; every path is resolved there with openat2(RESOLVE_IN_ROOT), so an image's
 * /etc/passwd symlinked to the host's /etc/passwd reads the image's own /etc/passwd.
 */
import { closeSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readSync, rmdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { DigestMismatchError, ImageInvalidError } from '../../../common/errors.js';
import { atPath, O_DIRECTORY, O_NOFOLLOW, O_PATH, O_RDONLY, openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS } from '../sys/at.js';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, MS_RDONLY, type Sys } from '../sys/index.js';
import { imageProcess, parseRunConfig, type ImageProcess, type ProcessOverrides, type RootReader } from './config.js';
import { DEFAULT_LAYER_BOUNDS, unpackImage, type LayerBounds } from './layers.js';
import { blobPath, tmpDir } from './paths.js';
import type { ImageRecord } from './record.js';

const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
/** Image configs are a few KiB; Docker's own limit on one is 8 MiB. */
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
const MAX_READ = 4 * 1024 * 1024;

/** A RootReader over a directory: the kernel resolves every path as if it were "/". */
export class DirReader implements RootReader {
  private constructor(private fd: number) {}

  static open(dir: string): DirReader {
    return new DirReader(openat2(-100, dir, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, 'the image rootfs'));
  }

  readFile(p: string): Buffer | undefined {
    let fd: number;
    try {
      fd = openat2(this.fd, p, O_RDONLY, IN_ROOT);
    } catch {
      return undefined;
    }
    try {
      const buf = Buffer.alloc(MAX_READ + 1);
      let n = 0;
      for (let got; n < buf.length && (got = readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += got;
      return buf.subarray(0, n); // past MAX_READ the caller sees a file too large to be an account file
    } catch {
      return undefined; // a directory, say
    } finally {
      closeSync(fd);
    }
  }

  /**
   * p with every symlink resolved inside the rootfs, as the container will see it; from
   * the first component that does not exist on, the rest is kept as written. Dangling links
   * count: `/work -> /proc/self/fd/7` resolves to /proc/self/fd/7 although the image has no
   * /proc, because the container will. Each link is read from its parent directory, opened
   * with the kernel confining it; at most 40 links are followed (Linux's MAXSYMLINKS).
   */
  realpath(p: string): string | undefined {
    let done: string[] = [];
    let todo = p.split('/').filter((c) => c !== '' && c !== '.');
    for (let links = 0; todo.length > 0; ) {
      const name = todo.shift()!;
      if (name === '..') {
        done.pop();
        continue;
      }
      let dir: number;
      try {
        dir = openat2(this.fd, done.length ? done.join('/') : '.', O_PATH | O_DIRECTORY, IN_ROOT);
      } catch {
        return `/${[...done, name, ...todo].join('/')}`;
      }
      try {
        const st = lstatSync(atPath(dir, name), { throwIfNoEntry: false });
        if (!st?.isSymbolicLink()) {
          done.push(name);
          if (!st) return `/${[...done, ...todo].join('/')}`;
          continue;
        }
        if (++links > 40) return undefined;
        const target = readlinkSync(atPath(dir, name));
        if (target.startsWith('/')) done = [];
        todo = [...target.split('/').filter((c) => c !== '' && c !== '.'), ...todo];
      } finally {
        closeSync(dir);
      }
    }
    return `/${done.join('/')}`;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * Calls fn with a reader over the image's rootfs (layers bottom first): the only layer
 * itself, or a read-only overlay of all of them (OverlayFS needs two lower dirs when it has
 * no upper one), unmounted whatever fn does.
 */
export async function withImageRoot<T>(sys: Sys, imagesDir: string, layers: string[], fn: (r: RootReader) => T | Promise<T>): Promise<T> {
  if (layers.length === 1) {
    const r = DirReader.open(layers[0]!);
    try {
      return await fn(r);
    } finally {
      r.close();
    }
  }
  mkdirSync(tmpDir(imagesDir), { recursive: true, mode: 0o700 });
  const mnt = mkdtempSync(path.join(tmpDir(imagesDir), 'look-'));
  try {
    sys.mount('faasbox-image-look', mnt, 'overlay', MS_RDONLY | MS_NOSUID | MS_NODEV, `lowerdir=${[...layers].reverse().join(':')}`);
    try {
      const r = DirReader.open(mnt);
      try {
        return await fn(r);
      } finally {
        r.close();
      }
    } finally {
      sys.umount(mnt, MNT_DETACH);
    }
  } finally {
    rmdirSync(mnt);
  }
}

/** The config blob, its digest checked (hash the bytes you parse), parsed. */
export function readImageConfig(imagesDir: string, record: ImageRecord): unknown {
  const bytes = readFileSync(blobPath(imagesDir, record.configDigest));
  if (bytes.length > MAX_CONFIG_BYTES) throw new ImageInvalidError(`the config of image ${record.manifestDigest} is larger than ${MAX_CONFIG_BYTES} bytes`);
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== record.configDigest) throw new DigestMismatchError(`the config blob of image ${record.manifestDigest}`, record.configDigest, actual);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ImageInvalidError(`the config of image ${record.manifestDigest} is not JSON: ${(err as Error).message}`);
  }
}

export interface PreparedImage {
  /** Layer directories bottom first: ContainerSpec.rootfs.layers. */
  layers: string[];
  process: ImageProcess;
}

/** Everything a container from record needs: its layers and its process, the caller's overrides applied. */
export async function prepareImage(sys: Sys, imagesDir: string, record: ImageRecord, over: ProcessOverrides = {}, bounds: LayerBounds = DEFAULT_LAYER_BOUNDS): Promise<PreparedImage> {
  const config = readImageConfig(imagesDir, record);
  const diffIds = (config as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== record.diffIds.length || diffIds.some((d, i) => d !== record.diffIds[i])) {
    throw new ImageInvalidError(`image ${record.manifestDigest}: its record's diff_ids are not its config's rootfs.diff_ids`);
  }
  const run = parseRunConfig(config);
  const layers = await unpackImage(imagesDir, record, bounds);
  const process = await withImageRoot(sys, imagesDir, layers, (root) => imageProcess(run, root, over));
  return { layers, process };
}
