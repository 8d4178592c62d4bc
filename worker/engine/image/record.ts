/**
 * An image record as the store keeps it (images/sha256/<manifest-hex>.json): what the
 * puller writes once every blob is verified, and what unpacking and running read.
 */
import { readFileSync } from 'node:fs';
import { ImageInvalidError } from '../../../common/errors.js';
import { recordPath } from './paths.js';

export interface LayerDescriptor {
  digest: string;
  mediaType: string;
  size: number;
}

export interface ImageRecord {
  manifestDigest: string;
  mediaType: string;
  configDigest: string;
  /** Bottom first, as in the manifest. */
  layers: LayerDescriptor[];
  /** The config's rootfs.diff_ids, one per layer: the sha256 of each uncompressed tar. */
  diffIds: string[];
  platform?: { os: string; architecture: string; variant?: string };
  repo?: string;
  pulledAt?: string;
}

export function readRecord(imagesDir: string, manifestDigest: string): ImageRecord {
  const file = recordPath(imagesDir, manifestDigest);
  let record: ImageRecord;
  try {
    record = JSON.parse(readFileSync(file, 'utf8')) as ImageRecord;
  } catch (err) {
    throw new ImageInvalidError(`the record of image ${manifestDigest} cannot be read: ${(err as Error).message}`);
  }
  if (!Array.isArray(record.layers) || !Array.isArray(record.diffIds) || record.layers.length !== record.diffIds.length) {
    throw new ImageInvalidError(`image ${manifestDigest}: its record has ${record.layers?.length} layers but ${record.diffIds?.length} diff_ids`);
  }
  return record;
}
