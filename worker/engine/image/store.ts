/**
 * The image store as one API over its layout (paths.ts): what it holds (list, inspect),
 * and what leaves it (remove a tag or an image, prune). What is in use is never removed:
 *
 *   - a tag names an image (tags.json); an image no tag names is unreferenced;
 *   - a live container pins the image and the layers it runs from (pins.ts leases);
 *   - faasbox's runtime images (tags faasbox/*) are the pools': rm refuses them as in use.
 *
 * Removal takes the store's exclusive lock (lock.ts) while it decides and unlinks or
 * renames into tmp/; layer directories are deleted after the lock is released (prune.ts).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ImageNotFoundError } from '../../../common/errors.js';
import { parseRunConfig } from './config.js';
import { blobPath, digestHex, imagesDirOf, layerDir, recordPath } from './paths.js';
import { readLeases, type Lease } from './pins.js';
import { readRecord, type ImageRecord } from './record.js';
import { readTags, resolveStoredRef, tagKey } from './refs.js';
import { readImageConfig } from './rootfs.js';
import { isAlive, readState } from '../state.js';

/** Tags of faasbox's own runtime images (import.ts runtimeTag): the pools run from them. */
export const RUNTIME_TAG_PREFIX = 'faasbox/';

export interface ImageSummary {
  /** The manifest digest: the image's identity. */
  digest: string;
  tags: string[];
  repo?: string;
  /** Bytes of its blobs as stored: manifest, config and (compressed) layers. */
  size: number;
  /** The config's `created`, when it says. */
  created?: string;
  pulledAt?: string;
  /** os/architecture[/variant] */
  platform?: string;
  layerCount: number;
  /** Containers running from it (their ids), and "faasbox pools" for a runtime image. */
  usedBy: string[];
}

export interface LayerInfo {
  digest: string;
  diffId: string;
  mediaType: string;
  size: number;
  /** Whether its directory is unpacked in layers/. */
  unpacked: boolean;
}

export interface ImageDetails extends ImageSummary {
  mediaType: string;
  configDigest: string;
  config: { entrypoint?: string[]; cmd?: string[]; env: string[]; workingDir?: string; user?: string; stopSignal?: string };
  layers: LayerInfo[];
}

export interface RemoveResult {
  digest: string;
  untagged: string[];
  /** Whether the image's record went (no tag names it any more and nothing pins it). */
  removed: boolean;
  freedBytes: number;
}

const platformText = (p: ImageRecord['platform']): string | undefined => (p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : undefined);

function fileSize(p: string): number {
  return statSync(p, { throwIfNoEntry: false })?.size ?? 0;
}

export class ImageStore {
  readonly imagesDir: string;

  constructor(readonly stateDir: string) {
    this.imagesDir = imagesDirOf(stateDir);
  }

  /** Manifest digests of every record the store holds. */
  digests(): string[] {
    let names: string[];
    try {
      names = readdirSync(path.join(this.imagesDir, 'images', 'sha256'));
    } catch {
      return [];
    }
    return names.filter((n) => /^[0-9a-f]{64}\.json$/.test(n)).map((n) => `sha256:${n.slice(0, 64)}`);
  }

  /**
   * Leases of containers that are alive: the container's dir exists, and its owner lives
   * (or it is being created: no readable state yet). A dead one's lease waits for gc.
   */
  liveLeases(): Lease[] {
    return readLeases(this.imagesDir).filter((l) => {
      const dir = path.join(this.stateDir, 'containers', l.container);
      if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return false;
      const s = readState(path.join(dir, 'state.json'));
      return !s || isAlive(s.owner);
    });
  }

  /** Tags by manifest digest. */
  tagsByDigest(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [tag, digest] of Object.entries(readTags(this.imagesDir))) out.set(digest, [...(out.get(digest) ?? []), tag]);
    return out;
  }

  /** Who uses the image: containers whose lease names it or stands on exactly its layers, and the pools for a runtime tag. */
  usersOf(record: ImageRecord, tags: string[], leases: Lease[] = this.liveLeases()): string[] {
    const stack = record.diffIds.join(',');
    const users = leases.filter((l) => l.manifestDigest === record.manifestDigest || (l.manifestDigest === undefined && l.diffIds.join(',') === stack)).map((l) => `container ${l.container}`);
    if (tags.some((t) => t.startsWith(RUNTIME_TAG_PREFIX))) users.push('faasbox pools (a runtime image)');
    return users;
  }

  private summary(record: ImageRecord, tags: string[], leases: Lease[]): ImageSummary {
    const blobs = [record.manifestDigest, record.configDigest, ...record.layers.map((l) => l.digest)];
    let created: string | undefined;
    try {
      const c = (readImageConfig(this.imagesDir, record) as { created?: unknown }).created;
      if (typeof c === 'string') created = c;
    } catch {
      // a config that does not read is inspect's to report; ls lists the image anyway
    }
    const s: ImageSummary = {
      digest: record.manifestDigest,
      tags: [...tags].sort(),
      size: blobs.reduce((n, d) => n + fileSize(blobPath(this.imagesDir, d)), 0),
      layerCount: record.layers.length,
      usedBy: this.usersOf(record, tags, leases),
    };
    if (record.repo !== undefined) s.repo = record.repo;
    if (created !== undefined) s.created = created;
    if (record.pulledAt !== undefined) s.pulledAt = record.pulledAt;
    const platform = platformText(record.platform);
    if (platform !== undefined) s.platform = platform;
    return s;
  }

  /** Every image, newest pull first. A record that does not read is skipped (prune leaves it to a later pull to rewrite). */
  list(): ImageSummary[] {
    const tags = this.tagsByDigest();
    const leases = this.liveLeases();
    const out: ImageSummary[] = [];
    for (const digest of this.digests()) {
      let record: ImageRecord;
      try {
        record = readRecord(this.imagesDir, digest);
      } catch {
        continue;
      }
      out.push(this.summary(record, tags.get(digest) ?? [], leases));
    }
    return out.sort((a, b) => (b.pulledAt ?? '').localeCompare(a.pulledAt ?? '') || a.digest.localeCompare(b.digest));
  }

  /**
   * The record ref names: a tag (repo[:tag]), repo@sha256:..., a full digest, or a unique
   * prefix of at least 12 hex digits of one (what `image ls` shows).
   */
  resolve(ref: string): ImageRecord {
    const prefix = /^(?:sha256:)?([0-9a-f]{12,64})$/.exec(ref)?.[1];
    if (prefix !== undefined && readTags(this.imagesDir)[tagKey(ref)] === undefined) {
      const matches = this.digests().filter((d) => d.slice(7).startsWith(prefix));
      if (matches.length === 1) return readRecord(this.imagesDir, matches[0]!);
      if (matches.length > 1) throw new ImageNotFoundError(ref, `the prefix is ambiguous (${matches.length} images); give more of the digest`);
    }
    return resolveStoredRef(this.imagesDir, ref);
  }

  inspect(ref: string): ImageDetails {
    const record = this.resolve(ref);
    const tags = this.tagsByDigest().get(record.manifestDigest) ?? [];
    const run = parseRunConfig(readImageConfig(this.imagesDir, record));
    const config: ImageDetails['config'] = { env: run.Env ?? [] };
    if (run.Entrypoint) config.entrypoint = run.Entrypoint;
    if (run.Cmd) config.cmd = run.Cmd;
    if (run.WorkingDir !== undefined) config.workingDir = run.WorkingDir;
    if (run.User !== undefined) config.user = run.User;
    if (run.StopSignal !== undefined) config.stopSignal = run.StopSignal;
    return {
      ...this.summary(record, tags, this.liveLeases()),
      mediaType: record.mediaType,
      configDigest: record.configDigest,
      config,
      layers: record.layers.map((l, i) => ({
        digest: l.digest,
        diffId: record.diffIds[i]!,
        mediaType: l.mediaType,
        size: l.size,
        unpacked: statSync(layerDir(this.imagesDir, record.diffIds[i]!), { throwIfNoEntry: false })?.isDirectory() ?? false,
      })),
    };
  }

  /**
   * Which tags `rm ref` takes away: the tag itself, or every tag of the image when ref
   * names it by digest. Throws IMAGE_NOT_FOUND as resolve does.
   */
  tagsToRemove(ref: string): { record: ImageRecord; tags: string[] } {
    const record = this.resolve(ref);
    const all = this.tagsByDigest().get(record.manifestDigest) ?? [];
    const byDigest = ref.includes('@') || /^(?:sha256:)?[0-9a-f]{12,64}$/.test(ref);
    return { record, tags: byDigest ? all : all.filter((t) => t === tagKey(ref)) };
  }

  /** The record's file, for prune and rm. */
  recordFile(digest: string): string {
    digestHex(digest);
    return recordPath(this.imagesDir, digest);
  }

  /** A record's raw size, for the bytes freed. */
  recordBytes(digest: string): number {
    try {
      return readFileSync(this.recordFile(digest)).length;
    } catch {
      return 0;
    }
  }
}
