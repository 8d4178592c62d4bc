/**
 * An image's layers as directories, bottom first: each layer unpacked once into
 * layers/sha256/<diff_id-hex>/ and shared by every container that stands on it (as an
 * OverlayFS lower dir, never written to). A layer is written into a fresh directory under
 * tmp/, its uncompressed stream checked against the config's diff_id, and only then renamed
 * into place; a failure of any kind removes the temporary directory, so nothing under a
 * final name was ever half-written or unverified. Two unpacks of one layer in this process
 * share one promise; across processes the rename decides (the loser discards its copy).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { ArchiveBoundError, ArchiveError, type UnpackBounds } from '../../../common/archive/index.js';
import { DigestMismatchError, ImageInvalidError, ImageTooLargeError } from '../../../common/errors.js';
import { blobPath, digestHex, layerDir, tmpDir } from './paths.js';
import type { ImageRecord, LayerDescriptor } from './record.js';
import { unpackLayerInto, type LayerReport } from './unpack/index.js';

export type LayerBounds = UnpackBounds;

/**
 * Per layer. Far above what runtime images hold (Debian's python3 image: ~1,900 entries,
 * ~50 MB) and below what fills a worker's disk or inode table by surprise.
 */
export const DEFAULT_LAYER_BOUNDS: LayerBounds = {
  maxUnpackedBytes: 4 * 1024 * 1024 * 1024,
  maxEntries: 500_000,
  maxPathBytes: 4096,
  maxNameBytes: 255,
};

const inflight = new Map<string, Promise<string>>();

/** The unpack errors in the store's terms: a bound is IMAGE_TOO_LARGE, a broken rule IMAGE_INVALID. */
function asImageError(err: unknown, layer: LayerDescriptor, diffId: string): unknown {
  const where = `layer ${layer.digest} (diff_id ${diffId})`;
  if (err instanceof ArchiveBoundError) return new ImageTooLargeError(`${where}: ${err.message}; nothing of it was kept`, err.bound, err.limit);
  if (err instanceof ArchiveError) return new ImageInvalidError(`${where}: ${err.message}; nothing of it was kept`, { layer: layer.digest, member: err.member });
  return err;
}

function isDir(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** Unpacks one layer (once); resolves to its directory. `onReport` hears of layers actually unpacked. */
export function unpackLayer(imagesDir: string, layer: LayerDescriptor, diffId: string, bounds: LayerBounds, onReport?: (r: LayerReport) => void): Promise<string> {
  const final = layerDir(imagesDir, diffId);
  if (isDir(final)) return Promise.resolve(final);
  const running = inflight.get(final);
  if (running) return running;
  const p = (async () => {
    const tmpRoot = tmpDir(imagesDir);
    mkdirSync(tmpRoot, { recursive: true, mode: 0o700 });
    mkdirSync(path.dirname(final), { recursive: true, mode: 0o755 });
    const tmp = mkdtempSync(path.join(tmpRoot, `layer-${digestHex(diffId).slice(0, 12)}-`));
    try {
      let report: LayerReport;
      try {
        report = await unpackLayerInto(blobPath(imagesDir, layer.digest), layer.mediaType, tmp, bounds);
      } catch (err) {
        throw asImageError(err, layer, diffId);
      }
      if (report.diffId !== diffId) throw new DigestMismatchError(`the uncompressed layer ${layer.digest}`, diffId, report.diffId);
      try {
        renameSync(tmp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Another process renamed the same verified layer first: theirs is as good as ours.
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !isDir(final)) throw err;
      }
      onReport?.(report);
      return final;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  })();
  inflight.set(final, p);
  void p.then(
    () => inflight.delete(final),
    () => inflight.delete(final),
  );
  return p;
}

/**
 * Every layer of record unpacked (those already there reused); resolves to their
 * directories bottom first, as ContainerSpec.rootfs.layers takes them.
 */
export async function unpackImage(imagesDir: string, record: ImageRecord, bounds: LayerBounds = DEFAULT_LAYER_BOUNDS, onReport?: (r: LayerReport) => void): Promise<string[]> {
  if (record.layers.length !== record.diffIds.length) {
    throw new ImageInvalidError(`image ${record.manifestDigest}: ${record.layers.length} layers but ${record.diffIds.length} diff_ids in its config`);
  }
  if (record.layers.length === 0) throw new ImageInvalidError(`image ${record.manifestDigest} has no layers`);
  const results = await Promise.allSettled(record.layers.map((l, i) => unpackLayer(imagesDir, l, record.diffIds[i]!, bounds, onReport)));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<string>).value);
}
