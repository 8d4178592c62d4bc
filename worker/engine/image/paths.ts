/**
 * Where the image store keeps what, under <stateDir>/images/ (the layout shared with the
 * puller, store.ts): one function per path, so that no caller spells one itself.
 *
 *   blobs/sha256/<hex>              verified blobs (manifests, configs, compressed layers)
 *   images/sha256/<manifest-hex>.json  image records (ImageRecord)
 *   layers/sha256/<diffid-hex>/     each layer unpacked once, read-only, an OverlayFS lower dir
 *   tmp/                            whatever is being written; renamed into place when verified
 */
import path from 'node:path';
import { ImageInvalidError } from '../../../common/errors.js';

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The hex of a sha256 digest; anything else (another algorithm, a path) is refused. */
export function digestHex(digest: string, what = 'digest'): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new ImageInvalidError(`${what} ${JSON.stringify(digest.slice(0, 80))} is not a sha256 digest`, { what });
  return m[1]!;
}

export const imagesDirOf = (stateDir: string): string => path.join(stateDir, 'images');
export const blobPath = (imagesDir: string, digest: string): string => path.join(imagesDir, 'blobs', 'sha256', digestHex(digest, 'blob digest'));
export const recordPath = (imagesDir: string, manifestDigest: string): string => path.join(imagesDir, 'images', 'sha256', `${digestHex(manifestDigest, 'manifest digest')}.json`);
export const layerDir = (imagesDir: string, diffId: string): string => path.join(imagesDir, 'layers', 'sha256', digestHex(diffId, 'diff_id'));
export const tmpDir = (imagesDir: string): string => path.join(imagesDir, 'tmp');
