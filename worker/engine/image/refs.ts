/**
 * A reference (`repo[:tag]`, `repo@sha256:...`, or a bare manifest digest) to the image
 * record the store holds for it, from the tags file only: nothing here reaches a registry.
 * The tags file (<images>/tags.json, `{"repo:tag": "sha256:<manifest>"}`) is written by the
 * puller and by the runtime-image import; one function reads it, so the format has one home.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ImageNotFoundError } from '../../../common/errors.js';
import { acquireLockSync } from './lock.js';
import { recordPath, tmpDir } from './paths.js';
import { readRecord, type ImageRecord } from './record.js';

export const tagsPath = (imagesDir: string): string => path.join(imagesDir, 'tags.json');

/** The key a tag is stored under: the tag is "latest" when the reference has none. */
export function tagKey(ref: string): string {
  const slash = ref.lastIndexOf('/');
  return ref.indexOf(':', slash + 1) === -1 ? `${ref}:latest` : ref;
}

export function readTags(imagesDir: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(tagsPath(imagesDir), 'utf8')) as Record<string, string>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

/**
 * Changes the tags file: read, `change`, write aside and rename in (a reader never sees
 * half of it), all under tmp/tags.lock, so that two writers at once (a pull's tag, an
 * import's, an rm's untag) cannot each rename in a file without the other's change.
 */
export function updateTags(imagesDir: string, change: (tags: Record<string, string>) => void): void {
  mkdirSync(tmpDir(imagesDir), { recursive: true, mode: 0o700 });
  const lock = acquireLockSync(path.join(tmpDir(imagesDir), 'tags.lock'));
  try {
    const tags = readTags(imagesDir);
    change(tags);
    const tmp = path.join(tmpDir(imagesDir), `tags-${randomBytes(6).toString('hex')}`);
    writeFileSync(tmp, `${JSON.stringify(tags, null, 2)}\n`);
    renameSync(tmp, tagsPath(imagesDir));
  } finally {
    lock.release();
  }
}

/** The tags file's key for a pull pinned to an index digest: `repo@sha256:<index>` -> the manifest chosen. */
export function pinAlias(repo: string, indexDigest: string): string {
  const slash = repo.lastIndexOf('/');
  const colon = repo.indexOf(':', slash + 1);
  return `${colon === -1 ? repo : repo.slice(0, colon)}@${indexDigest}`;
}

/** The stored image ref names; ImageNotFoundError ("not pulled") when the store has none. */
export function resolveStoredRef(imagesDir: string, ref: string): ImageRecord {
  const at = ref.indexOf('@');
  const pinned = at >= 0 ? ref.slice(at + 1) : /^sha256:[0-9a-f]{64}$/.test(ref) ? ref : undefined;
  // A pinned digest wins over the tag. One that names an index (several platforms) has no
  // record of its own: the pull wrote `repo@<index digest>` in the tags file, naming the
  // platform's manifest it chose (pinAlias).
  let digest = pinned ?? readTags(imagesDir)[tagKey(ref)];
  if (pinned !== undefined && at >= 0 && !existsSync(recordPath(imagesDir, pinned))) digest = readTags(imagesDir)[pinAlias(ref.slice(0, at), pinned)] ?? pinned;
  if (digest === undefined || !/^sha256:[0-9a-f]{64}$/.test(digest) || !existsSync(recordPath(imagesDir, digest))) {
    throw new ImageNotFoundError(ref, 'not pulled (faasbox image pull REF, or ctr run --pull)');
  }
  return readRecord(imagesDir, digest);
}
