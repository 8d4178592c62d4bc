/**
 * `pullImage` (the PullImage contract, pull-types.ts): an image from an OCI registry into
 * the store, every byte verified before it is under a final name.
 *
 *   reference -> manifest (an index: the platform's manifest) -> config (diff_ids)
 *     -> layer blobs, 3 at once, each into tmp/blob-<hex>.part, verified, renamed into blobs/
 *     -> each layer unpacked as soon as its blob is in (layers.ts: diff_id verified)
 *     -> the record (images/sha256/<manifest>.json), written last -> the tag (tags.json)
 *
 * Once only: pulls of one image in this process share one promise (keyed by the platform
 * manifest's digest); a blob is fetched by the holder of tmp/blob-<hex>.lock only, so two
 * processes (or two images sharing a layer) fetch it once; a blob or an unpacked layer
 * already in the store is not fetched again.
 *
 * After a crash anywhere, a final name holds only what was verified: tmp/ holds the rest.
 * A .part whose lock holder died is resumed by the next pull (hashed again, then Range);
 * other tmp/ entries older than TMP_MAX_AGE_MS with no live lock are removed by a process's
 * first pull (sweepTmp).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { DigestMismatchError, ImageInvalidError, ImageNotFoundError } from '../../../common/errors.js';
import { setTag, writeAtomic } from './import.js';
import { pinAlias } from './refs.js';
import { DEFAULT_LAYER_BOUNDS, unpackImage, unpackLayer } from './layers.js';
import { acquireLock, lockHolderAlive } from './lock.js';
import { blobPath, digestHex, layerDir, recordPath, tmpDir } from './paths.js';
import type { Platform, PullImage, PullOptions, PullProgress, PullResult } from './pull-types.js';
import type { ImageRecord, LayerDescriptor } from './record.js';
import { credsFromDockerConfig, dockerConfigDir } from './registry/auth.js';
import { RegistryClient, type FetchedManifest } from './registry/client.js';
import { choosePlatform, configDiffIds, formatPlatform, hostPlatform, MAX_CONFIG_BYTES, parseManifest, type Descriptor, type ImageManifest } from './registry/manifest.js';
import { formatReference, parseReference, referenceTarget, type ImageReference } from './registry/reference.js';
import { Transport } from './registry/transport.js';

/** Blobs fetched at once: past 3 a registry on one link gains little and the store's disk is busier. */
export const BLOB_CONCURRENCY = 3;
export const TMP_MAX_AGE_MS = 6 * 3600_000;

interface Pulled {
  record: ImageRecord;
  transferred: number;
}

const pulls = new Map<string, Promise<Pulled>>();
const blobs = new Map<string, Promise<number>>();
const swept = new Set<string>();

const partPath = (imagesDir: string, digest: string) => path.join(tmpDir(imagesDir), `blob-${digestHex(digest)}.part`);
const lockPath = (imagesDir: string, digest: string) => path.join(tmpDir(imagesDir), `blob-${digestHex(digest)}.lock`);

/**
 * tmp/ as a crash left it: entries older than maxAge removed unless a live process holds
 * their lock (a .part with a live holder is being written; one without is resumable until old).
 */
export function sweepTmp(imagesDir: string, maxAgeMs = TMP_MAX_AGE_MS): string[] {
  const dir = tmpDir(imagesDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names) {
    const file = path.join(dir, name);
    if (name.endsWith('.lock')) {
      if (!lockHolderAlive(file)) {
        rmSync(file, { force: true });
        removed.push(name);
      }
      continue;
    }
    if (name.endsWith('.break')) continue;
    const m = /^blob-([0-9a-f]{64})\.part$/.exec(name);
    if (m && lockHolderAlive(path.join(dir, `blob-${m[1]}.lock`))) continue;
    const mtime = statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? now;
    if (now - mtime > maxAgeMs) {
      rmSync(file, { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** A verified small blob (manifest, config) into blobs/ by temporary name and rename. */
function putBlob(imagesDir: string, digest: string, bytes: Buffer): void {
  const file = blobPath(imagesDir, digest);
  if (!existsSync(file)) writeAtomic(imagesDir, file, bytes);
}

/**
 * One blob into blobs/ (unless there already): once per process (shared promise) and once
 * across processes (its lock). Resolves to the bytes that came over the network.
 */
async function fetchBlob(imagesDir: string, client: RegistryClient, desc: Descriptor, onBytes: (n: number) => void, signal?: AbortSignal): Promise<number> {
  const final = blobPath(imagesDir, desc.digest);
  if (existsSync(final)) return 0;
  const key = `${imagesDir}\0${desc.digest}`;
  const running = blobs.get(key);
  if (running) {
    // Another pull here is fetching it (maybe from another repository): use theirs if it lands.
    await running.catch(() => undefined);
    if (existsSync(final)) return 0;
  }
  const p = (async () => {
    const lock = await acquireLock(lockPath(imagesDir, desc.digest), { signal });
    try {
      if (existsSync(final)) return 0; // another process fetched it while we waited
      const part = partPath(imagesDir, desc.digest);
      let got;
      try {
        got = await client.blobToFile(desc, part, onBytes);
      } catch (err) {
        if (!(err instanceof DigestMismatchError)) throw err; // the .part stays, for a resume
        rmSync(part, { force: true });
        // What a killed pull left may be what was wrong: once more, from nothing.
        if (!((err as { resumedFrom?: number }).resumedFrom! > 0)) throw err;
        try {
          got = await client.blobToFile(desc, part, onBytes);
        } catch (again) {
          if (again instanceof DigestMismatchError) rmSync(part, { force: true });
          throw again;
        }
      }
      mkdirSync(path.dirname(final), { recursive: true });
      renameSync(part, final);
      return got.transferred;
    } finally {
      lock.release();
    }
  })();
  blobs.set(key, p);
  try {
    return await p;
  } finally {
    if (blobs.get(key) === p) blobs.delete(key);
  }
}

/** Runs fn over items, at most n at once; the first failure rejects (the others are let finish). */
async function eachLimited<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failed) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed) throw failed.err;
}

/** The blobs and layers of one image manifest, then its record. */
async function fetchImage(imagesDir: string, client: RegistryClient, ref: ImageReference, fetched: FetchedManifest, manifest: ImageManifest, opts: PullOptions, name: string, mustBe?: Platform): Promise<Pulled> {
  const bounds = opts.bounds ?? DEFAULT_LAYER_BOUNDS;
  putBlob(imagesDir, fetched.digest, fetched.bytes);
  let transferred = 0;
  const totalBytes = manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
  let doneBytes = 0;
  const emit = (p: Omit<PullProgress, 'doneBytes' | 'totalBytes'>) => opts.onProgress?.({ ...p, doneBytes, totalBytes });

  // The config goes the way of every blob (once across processes, verified on disk), bounded first.
  if (manifest.config.size > MAX_CONFIG_BYTES) throw new ImageInvalidError(`${name}: its config is ${manifest.config.size} bytes, more than the ${MAX_CONFIG_BYTES} faasbox reads`);
  transferred += await fetchBlob(imagesDir, client, manifest.config, () => undefined, opts.signal);
  const configBytes = readFileSync(blobPath(imagesDir, manifest.config.digest));
  doneBytes += manifest.config.size;
  const { diffIds, platform } = configDiffIds(configBytes, manifest.layers.length, name);
  const record: ImageRecord = {
    manifestDigest: fetched.digest,
    mediaType: manifest.mediaType,
    configDigest: manifest.config.digest,
    layers: manifest.layers,
    diffIds,
    repo: `${ref.registry}/${ref.repository}`,
    pulledAt: new Date().toISOString(),
  };
  if (platform) record.platform = platform;
  // A single-platform image asked for with an explicit platform it is not (as Docker refuses it).
  if (mustBe && platform && (platform.os !== mustBe.os || platform.architecture !== mustBe.architecture || (mustBe.variant && platform.variant && platform.variant !== mustBe.variant))) {
    const err = new ImageNotFoundError(name);
    err.message = `image ${name} is ${formatPlatform(platform)} only, not the ${formatPlatform(mustBe)} asked for`;
    throw err;
  }

  // A layer already unpacked needs no blob; a blob already stored needs no transfer.
  const todo: { layer: LayerDescriptor; diffId: string }[] = [];
  manifest.layers.forEach((layer, i) => {
    const have = existsSync(layerDir(imagesDir, diffIds[i]!)) || existsSync(blobPath(imagesDir, layer.digest));
    if (have) doneBytes += layer.size;
    else todo.push({ layer, diffId: diffIds[i]! });
  });
  emit({ phase: 'downloading' });
  const unpacks: Promise<unknown>[] = [];
  const startUnpack = (layer: LayerDescriptor, diffId: string) => {
    emit({ phase: 'unpacking', layer: layer.digest, layerDone: layer.size, layerTotal: layer.size });
    const u = unpackLayer(imagesDir, layer, diffId, bounds);
    u.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    unpacks.push(u);
  };
  manifest.layers.forEach((layer, i) => {
    if (!todo.some((t) => t.layer === layer) && !existsSync(layerDir(imagesDir, diffIds[i]!))) startUnpack(layer, diffIds[i]!);
  });
  try {
    await eachLimited(todo, BLOB_CONCURRENCY, async ({ layer, diffId }) => {
      let mine = 0;
      const got = await fetchBlob(
        imagesDir,
        client,
        layer,
        (n) => {
          mine += n;
          doneBytes += n;
          emit({ phase: 'downloading', layer: layer.digest, layerDone: mine, layerTotal: layer.size });
        },
        opts.signal,
      );
      // Fetched by another pull meanwhile: its bytes count as done, not as ours.
      if (mine < layer.size) doneBytes += layer.size - mine;
      transferred += got;
      startUnpack(layer, diffId);
    });
  } finally {
    // Let running unpacks end (their temporary directories removed) before reporting.
    await Promise.allSettled(unpacks);
  }
  for (const u of unpacks) await u;
  // Every layer is in place and verified; unpackImage only confirms it, bottom first.
  await unpackImage(imagesDir, record, bounds);
  writeAtomic(imagesDir, recordPath(imagesDir, fetched.digest), JSON.stringify(record));
  return { record, transferred };
}

export const pullImage: PullImage = async (imagesDir, refText, opts: PullOptions = {}): Promise<PullResult> => {
  const ref = parseReference(refText);
  const name = formatReference(ref);
  mkdirSync(tmpDir(imagesDir), { recursive: true, mode: 0o700 });
  if (!swept.has(imagesDir)) {
    swept.add(imagesDir);
    sweepTmp(imagesDir);
  }
  const creds = opts.creds ?? credsFromDockerConfig(dockerConfigDir(opts.registries?.dockerConfigDir), ref.registry);
  const transport = new Transport(opts.registries, opts.timeoutMs);
  try {
    const client = new RegistryClient(ref, transport, creds, { retries: opts.retries, signal: opts.signal });
    opts.onProgress?.({ phase: 'resolving', doneBytes: 0, totalBytes: 0 });
    let fetched = await client.manifest(referenceTarget(ref));
    let manifest = parseManifest(fetched.bytes, fetched.contentType, name);
    const fromIndex = manifest.kind === 'index';
    if (manifest.kind === 'index') {
      const chosen = choosePlatform(manifest, opts.platform ?? hostPlatform(), name);
      putBlob(imagesDir, fetched.digest, fetched.bytes);
      fetched = await client.manifest(chosen.digest);
      manifest = parseManifest(fetched.bytes, fetched.contentType, `${name} (${chosen.digest})`);
      if (manifest.kind === 'index') throw new ImageInvalidError(`${name}: the index entry ${chosen.digest} is itself an index; faasbox follows one level`);
    }
    const mustBe = fromIndex ? undefined : opts.platform;
    // A pull that must check the platform does not share (or fail) another's.
    const key = `${imagesDir}\0${ref.registry}/${ref.repository}\0${fetched.digest}${mustBe ? `\0${formatPlatform(mustBe)}` : ''}`;
    let shared = pulls.get(key);
    let joined = true;
    if (!shared) {
      joined = false;
      shared = fetchImage(imagesDir, client, ref, fetched, manifest, opts, name, mustBe);
      pulls.set(key, shared);
      void shared.then(
        () => pulls.delete(key),
        () => pulls.delete(key),
      );
    }
    const { record, transferred } = await shared;
    // A pinned digest is what was fetched; its tag (if written too) was not looked at, so it is not moved.
    if (!ref.digest) setTag(imagesDir, `${ref.registry}/${ref.repository}:${ref.tag ?? 'latest'}`, fetched.digest);
    // Pinned to an index: the platform's manifest chosen is named under the index digest,
    // so that the same pinned reference finds it in the store (refs.ts resolveStoredRef).
    else if (fromIndex) setTag(imagesDir, pinAlias(`${ref.registry}/${ref.repository}`, ref.digest), fetched.digest);
    const total = manifest.config.size + record.layers.reduce((n, l) => n + l.size, 0);
    opts.onProgress?.({ phase: 'done', doneBytes: total, totalBytes: total });
    // A pull that joined another fetched nothing itself.
    return { ref: name, manifestDigest: fetched.digest, record, transferredBytes: joined ? 0 : transferred };
  } finally {
    transport.close();
  }
};
