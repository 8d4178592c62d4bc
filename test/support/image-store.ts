/**
 * An image store made by a test, laid out as the puller lays it (worker/engine/image/paths.ts):
 * blobs written by digest, records written by hand. For unpack tests that need no registry.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { blobPath, imagesDirOf, recordPath } from '../../worker/engine/image/paths.js';
import type { ImageRecord, LayerDescriptor } from '../../worker/engine/image/record.js';

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export const MEDIA = {
  tar: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

export class TestStore {
  readonly root: string;
  readonly stateDir: string;
  readonly imagesDir: string;

  constructor(prefix = 'faasbox-imgstore-') {
    this.root = mkdtempSync(path.join(tmpdir(), prefix));
    this.stateDir = path.join(this.root, 'state');
    this.imagesDir = imagesDirOf(this.stateDir);
    mkdirSync(path.join(this.imagesDir, 'blobs', 'sha256'), { recursive: true });
    mkdirSync(path.join(this.imagesDir, 'images', 'sha256'), { recursive: true });
  }

  /** Stores a blob and returns its digest. */
  blob(bytes: Buffer): string {
    const digest = sha256(bytes);
    writeFileSync(blobPath(this.imagesDir, digest), bytes);
    return digest;
  }

  /** A layer from an uncompressed tar, compressed as asked; with its diff_id. */
  layer(tarBytes: Buffer, compression: keyof typeof MEDIA = 'gzip'): { descriptor: LayerDescriptor; diffId: string } {
    const bytes =
      compression === 'gzip' ? gzipSync(tarBytes) : compression === 'zstd' ? execFileSync('zstd', ['-q', '-c'], { input: tarBytes, maxBuffer: 1 << 30 }) : tarBytes;
    const digest = this.blob(bytes);
    return { descriptor: { digest, mediaType: MEDIA[compression], size: bytes.length }, diffId: sha256(tarBytes) };
  }

  /** A record over layers (bottom first), written where the store keeps records. */
  record(layers: { descriptor: LayerDescriptor; diffId: string }[], config: object = {}): ImageRecord {
    const configDigest = this.blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } })));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: configDigest, layers: layers.map((l) => l.descriptor) }));
    const manifestDigest = this.blob(manifest);
    const record: ImageRecord = {
      manifestDigest,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      configDigest,
      layers: layers.map((l) => l.descriptor),
      diffIds: layers.map((l) => l.diffId),
      platform: { os: 'linux', architecture: 'amd64' },
      repo: 'test/image',
      pulledAt: new Date().toISOString(),
    };
    writeFileSync(recordPath(this.imagesDir, manifestDigest), JSON.stringify(record));
    return record;
  }

  /** Names under layers/sha256 and tmp/: what an unpack left. */
  leftovers(): { layers: string[]; tmp: string[] } {
    const ls = (d: string) => {
      try {
        return readdirSync(d);
      } catch {
        return [];
      }
    };
    return { layers: ls(path.join(this.imagesDir, 'layers', 'sha256')), tmp: ls(path.join(this.imagesDir, 'tmp')) };
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
