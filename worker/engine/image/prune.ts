/**
 * What leaves the image store: `rm REF` (untag; the image goes when no tag names it and
 * nothing uses it) and `prune` (every record nothing references, then every blob no
 * remaining record names, every layer directory no record or live pin names, and tmp/
 * leftovers older than a grace period).
 *
 * The decisions, the unlinks of records and blobs, and the renames of doomed layer
 * directories into tmp/ happen under the store's exclusive lock, so a pull (which holds the
 * shared lock from its first blob to its tag) or a container create (which writes its pin
 * under it) never sees a half-pruned store. The layer directories themselves are deleted
 * after the lock is released: a gigabyte of files can take seconds, and creates should not
 * wait for that; once renamed into tmp/ nothing will ever look for them by name.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { ImageInUseError } from '../../../common/errors.js';
import { withStoreLock, type LockOptions } from './store-lock.js';
import { blobPath, digestHex, tmpDir } from './paths.js';
import { readRecord, type ImageRecord } from './record.js';
import { readTags, updateTags } from './refs.js';
import { removeTree } from './remove.js';
import { RUNTIME_TAG_PREFIX, type ImageStore, type RemoveResult } from './store.js';

export interface PruneOptions extends LockOptions {
  /** tmp/ entries younger than this are left (a writer that does not take the lock may be at work). Default 15 min. */
  tmpGraceMs?: number;
}

export interface PruneReport {
  /** Manifest digests of the images removed. */
  images: string[];
  blobs: number;
  layers: number;
  tmp: number;
  freedBytes: number;
  /** Paths that could not be removed (a mount left on a tmp/ leftover, say). */
  left: string[];
}

export const DEFAULT_TMP_GRACE_MS = 15 * 60_000;

const ls = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

/** Records, blobs and layers nothing keeps; decided and unlinked/renamed under the caller's exclusive lock. */
function sweep(store: ImageStore, report: PruneReport, dropUnreferenced: boolean): string[] {
  const dir = store.imagesDir;
  const tags = readTags(dir);
  const tagged = new Set(Object.values(tags));
  const leases = store.liveLeases();
  const pinned = new Set(leases.flatMap((l) => (l.manifestDigest ? [l.manifestDigest] : [])));
  const kept: ImageRecord[] = [];
  for (const digest of store.digests()) {
    let record: ImageRecord | undefined;
    try {
      record = readRecord(dir, digest);
    } catch {
      record = undefined; // unreadable: nothing can run from it, so nothing keeps it
    }
    if (record && (tagged.has(digest) || pinned.has(digest) || !dropUnreferenced)) {
      kept.push(record);
      continue;
    }
    report.freedBytes += store.recordBytes(digest);
    rmSync(store.recordFile(digest), { force: true });
    report.images.push(digest);
  }
  const blobs = new Set(kept.flatMap((r) => [r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)]).map((d) => digestHex(d)));
  const layers = new Set([...kept.flatMap((r) => r.diffIds), ...leases.flatMap((l) => l.diffIds)].map((d) => digestHex(d)));
  const blobsDir = path.dirname(blobPath(dir, `sha256:${'0'.repeat(64)}`));
  for (const hex of ls(blobsDir)) {
    if (blobs.has(hex)) continue;
    const p = path.join(blobsDir, hex);
    report.freedBytes += statSync(p, { throwIfNoEntry: false })?.size ?? 0;
    rmSync(p, { force: true });
    report.blobs++;
  }
  const layersDir = path.join(dir, 'layers', 'sha256');
  const trash: string[] = [];
  mkdirSync(tmpDir(dir), { recursive: true, mode: 0o700 });
  for (const hex of ls(layersDir)) {
    if (layers.has(hex) || !/^[0-9a-f]{64}$/.test(hex)) continue;
    const to = path.join(tmpDir(dir), `trash-${hex.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
    renameSync(path.join(layersDir, hex), to);
    trash.push(to);
    report.layers++;
  }
  return trash;
}

function removeAll(paths: string[], report: PruneReport): void {
  for (const p of paths) {
    const r = removeTree(p);
    report.freedBytes += r.bytes;
    report.left.push(...r.left);
  }
}

/** Removes everything nothing references. */
export async function pruneStore(store: ImageStore, opts: PruneOptions = {}): Promise<PruneReport> {
  const report: PruneReport = { images: [], blobs: 0, layers: 0, tmp: 0, freedBytes: 0, left: [] };
  const grace = opts.tmpGraceMs ?? DEFAULT_TMP_GRACE_MS;
  const doomed = await withStoreLock(
    store.imagesDir,
    'exclusive',
    () => {
      const trash = sweep(store, report, true);
      const now = Date.now();
      const stale: string[] = [];
      for (const name of ls(tmpDir(store.imagesDir))) {
        const p = path.join(tmpDir(store.imagesDir), name);
        // A *.lock is the puller's (a blob's fetcher, the tags file's writer): it removes its
        // own stale ones, and one held by a pull that does not take the store lock must stay.
        if (trash.includes(p) || name.endsWith('.lock')) continue;
        const st = statSync(p, { throwIfNoEntry: false });
        if (!st || now - st.mtimeMs < grace) continue;
        stale.push(p);
        report.tmp++;
      }
      return [...trash, ...stale];
    },
    opts,
  );
  removeAll(doomed, report);
  return report;
}

/**
 * `rm ref`: takes its tags away (every tag of the image when ref is a digest). When no tag
 * is left and nothing uses the image, its record goes, and with it the blobs and layers no
 * other image or pin keeps. Removing a runtime image's tag, or the last tag of an image a
 * container runs from, is IMAGE_IN_USE unless force, which untags only: the record stays
 * while pinned, and a later prune removes it.
 */
export async function removeImage(store: ImageStore, ref: string, opts: LockOptions & { force?: boolean } = {}): Promise<RemoveResult> {
  const report: PruneReport = { images: [], blobs: 0, layers: 0, tmp: 0, freedBytes: 0, left: [] };
  const out = await withStoreLock(
    store.imagesDir,
    'exclusive',
    () => {
      const { record, tags: doomed } = store.tagsToRemove(ref);
      const digest = record.manifestDigest;
      const all = store.tagsByDigest().get(digest) ?? [];
      const remaining = all.filter((t) => !doomed.includes(t));
      const runtime = doomed.filter((t) => t.startsWith(RUNTIME_TAG_PREFIX));
      const users = [...(runtime.length ? ['faasbox pools (a runtime image)'] : []), ...(remaining.length ? [] : store.usersOf(record, []))];
      if (users.length && !opts.force) throw new ImageInUseError(ref, users);
      updateTags(store.imagesDir, (tags) => {
        for (const t of doomed) delete tags[t];
      });
      let removed = false;
      let trash: string[] = [];
      if (remaining.length === 0 && users.length === 0) {
        report.freedBytes += store.recordBytes(digest);
        rmSync(store.recordFile(digest), { force: true });
        removed = true;
        // Its blobs and layers, unless another image or a pin keeps them; other
        // unreferenced images are prune's, not rm's.
        trash = sweep(store, report, false);
      }
      return { digest, untagged: doomed, removed, trash };
    },
    opts,
  );
  removeAll(out.trash, report);
  return { digest: out.digest, untagged: out.untagged, removed: out.removed, freedBytes: report.freedBytes };
}
