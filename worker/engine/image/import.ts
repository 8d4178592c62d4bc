/**
 * faasbox's own runtime images (images/build.ts: a layer directory per recipe) written
 * into the image store as OCI images: the layer as an uncompressed tar blob (its digest is
 * its diff_id; gzip would cost seconds of CPU on ~100 MB for nothing, the blob never leaves
 * the machine), a config with rootfs.diff_ids, an OCI manifest, a record, and the tag
 * faasbox/<name>:<build-digest-hex>. The layer directory containers get is then the store's
 * (unpackImage), so pools and pulled images stand on one mechanism.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import type { BuiltImage } from '../../../images/build.js';
import { DEFAULT_LAYER_BOUNDS, unpackImage } from './layers.js';
import { blobPath, recordPath, tmpDir } from './paths.js';
import { readRecord, type ImageRecord } from './record.js';
import { readTags, updateTags } from './refs.js';

const LAYER_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar';
const MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';

export const runtimeTag = (built: Pick<BuiltImage, 'name' | 'digest'>): string => `faasbox/${built.name}:${built.digest.replace(/^sha256:/, '')}`;

/** Writes a file by temporary name and renames it in: a reader never sees half of it. */
export function writeAtomic(imagesDir: string, file: string, bytes: Buffer | string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  mkdirSync(tmpDir(imagesDir), { recursive: true, mode: 0o700 });
  const tmp = path.join(tmpDir(imagesDir), `write-${randomBytes(6).toString('hex')}`);
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
}

function putBlob(imagesDir: string, bytes: Buffer): { digest: string; size: number } {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const file = blobPath(imagesDir, digest);
  if (!existsSync(file)) writeAtomic(imagesDir, file, bytes);
  return { digest, size: bytes.length };
}

/** The layer directory as a tar blob, streamed through the hash into a temporary file. */
async function putLayerTar(imagesDir: string, dir: string): Promise<{ digest: string; size: number }> {
  mkdirSync(tmpDir(imagesDir), { recursive: true, mode: 0o700 });
  const tmp = path.join(tmpDir(imagesDir), `layer-tar-${randomBytes(6).toString('hex')}`);
  try {
    // pax keeps long names, owners and sub-second mtimes; sorted names and no atime/ctime
    // make the same layer directory give the same tar (and diff_id) every time.
    const tar = spawn('tar', ['--format=pax', '--pax-option=delete=atime,delete=ctime', '--sort=name', '--numeric-owner', '--xattrs', '-cf', '-', '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    tar.stderr!.on('data', (d) => (stderr += d));
    const hash = createHash('sha256');
    const out = createWriteStream(tmp);
    let size = 0;
    tar.stdout!.on('data', (c: Buffer) => {
      hash.update(c);
      size += c.length;
    });
    tar.stdout!.pipe(out);
    const [code] = (await once(tar, 'close')) as [number | null];
    if (!out.writableFinished) await once(out, 'finish');
    if (code !== 0) throw new Error(`tar of the runtime layer ${dir} failed (exit ${code}): ${stderr.trim().slice(0, 500)}`);
    const digest = `sha256:${hash.digest('hex')}`;
    const file = blobPath(imagesDir, digest);
    mkdirSync(path.dirname(file), { recursive: true });
    if (!existsSync(file)) renameSync(tmp, file);
    return { digest, size };
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Sets tag to digest in the tags file (refs.ts updateTags: under its lock). */
export function setTag(imagesDir: string, tag: string, digest: string): void {
  updateTags(imagesDir, (tags) => {
    tags[tag] = digest;
  });
}

export interface ImportedImage {
  record: ImageRecord;
  tag: string;
  /** The store's layer directories, bottom first (one for a runtime image). */
  layers: string[];
}

/** Imports built into the store once per build digest; later calls find it by its tag. */
export async function importRuntimeImage(imagesDir: string, built: BuiltImage, env: string[] = []): Promise<ImportedImage> {
  const tag = runtimeTag(built);
  const known = readTags(imagesDir)[tag];
  if (known && existsSync(recordPath(imagesDir, known))) {
    const record = readRecord(imagesDir, known);
    return { record, tag, layers: await unpackImage(imagesDir, record, DEFAULT_LAYER_BOUNDS) };
  }
  const layer = await putLayerTar(imagesDir, built.dir);
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const config = putBlob(
    imagesDir,
    Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: { Env: env }, rootfs: { type: 'layers', diff_ids: [layer.digest] }, history: [{ created_by: `faasbox images/build.ts ${built.name} ${built.digest}` }] })),
  );
  const manifestBytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_MEDIA_TYPE, config: { mediaType: CONFIG_MEDIA_TYPE, ...config }, layers: [{ mediaType: LAYER_MEDIA_TYPE, ...layer }] }),
  );
  const manifest = putBlob(imagesDir, manifestBytes);
  const record: ImageRecord = {
    manifestDigest: manifest.digest,
    mediaType: MANIFEST_MEDIA_TYPE,
    configDigest: config.digest,
    layers: [{ digest: layer.digest, mediaType: LAYER_MEDIA_TYPE, size: layer.size }],
    diffIds: [layer.digest],
    platform: { os: 'linux', architecture: arch },
    repo: `faasbox/${built.name}`,
    pulledAt: new Date().toISOString(),
  };
  // The layer is unpacked (and verified) before the record and tag make the image visible.
  const layers = await unpackImage(imagesDir, record, DEFAULT_LAYER_BOUNDS);
  writeAtomic(imagesDir, recordPath(imagesDir, manifest.digest), JSON.stringify(record));
  setTag(imagesDir, tag, manifest.digest);
  return { record, tag, layers };
}
