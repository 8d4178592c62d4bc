/**
 * One layer blob unpacked into one directory: decompress (streaming), read the tar with the
 * shared reader (common/archive), judge each member (rules.ts), write it with the kernel
 * confining every path (writer.ts), and check the uncompressed stream against the config's
 * diff_id. The caller gives an empty directory and removes it on any failure: this module
 * never decides what becomes visible.
 */
import { readTar, type UnpackBounds } from '../../../../common/archive/index.js';
import { ArchiveError } from '../../../../common/archive/index.js';
import { compressionOf, LayerStream } from './decompress.js';
import { LayerRules } from './rules.js';
import { LayerWriter } from './writer.js';

export { compressionOf } from './decompress.js';
export { layerParts, LayerRules, xattrAllowed, OPAQUE_MARKER, WHITEOUT_PREFIX } from './rules.js';

/** What a layer held, for logs and benches. */
export interface LayerReport {
  diffId: string;
  entries: number;
  bytes: number;
  /** Uncompressed tar bytes (what the diff_id hashes). */
  streamBytes: number;
  dropped: { devices: number; aufs: number; xattrs: number };
}

/** The reader's bound on the tar stream itself (headers, padding), past the content. */
export function maxStreamBytes(bounds: UnpackBounds): number {
  return bounds.maxUnpackedBytes + (bounds.maxEntries + 2) * 2048 + 512 * 1024;
}

/**
 * Unpacks blob (of mediaType) into dir. Returns the stream's digest; the caller compares
 * it with the diff_id (so a mismatch is reported in the caller's terms).
 */
export async function unpackLayerInto(blob: string, mediaType: string, dir: string, bounds: UnpackBounds): Promise<LayerReport> {
  const compression = compressionOf(mediaType);
  if (!compression) throw new ArchiveError(`unsupported layer media type ${JSON.stringify(mediaType)}`);
  const rules = new LayerRules(bounds);
  const stream = LayerStream.open(blob, compression, maxStreamBytes(bounds));
  const writer = LayerWriter.open(dir, (member) => rules.count(member));
  try {
    for await (const entry of readTar(stream, bounds)) {
      await writer.write(rules.check(entry), entry.path);
    }
    writer.finish();
    const diffId = await stream.drain();
    return { diffId, ...rules.totals, streamBytes: stream.bytes, dropped: rules.dropped };
  } catch (err) {
    throw await stream.explain(err);
  } finally {
    writer.close();
    stream.destroy();
  }
}
