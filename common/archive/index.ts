/**
 * One unpacker for everything faasbox unpacks (function packages now, image layers
 * later): readers that stream members out of an archive (tar, tar.gz, zip), the rules
 * every member must pass, and a writer that puts them under a root directory. Reading and
 * writing are separate, so the gateway can check a package with the same rules and
 * bounds without writing a byte.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { UnpackBounds } from './bounds.js';
import type { ArchiveEntry } from './entry.js';
import { ArchiveError } from './errors.js';
import { PackageRules, type CheckedEntry } from './rules.js';
import { readTar } from './tar.js';
import { TreeWriter } from './writer.js';
import { readZip } from './zip.js';

export { DEFAULT_UNPACK_BOUNDS, type UnpackBounds } from './bounds.js';
export { ArchiveBoundError, ArchiveError } from './errors.js';
export { pathParts, PackageRules, type CheckedEntry } from './rules.js';
export { TreeWriter } from './writer.js';
export { readTar } from './tar.js';
export type { ArchiveEntry } from './entry.js';

export type ArchiveFormat = 'tar' | 'tar.gz' | 'zip';

/** The format by its magic bytes, or undefined. */
export function sniffFormat(bytes: Buffer): ArchiveFormat | undefined {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return 'tar.gz';
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (bytes.length >= 263 && bytes.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return undefined;
}

/** gunzip as a stream; its errors (junk after a gzip magic) become ArchiveErrors. */
async function* gunzip(bytes: Buffer): AsyncIterable<Buffer> {
  const z = Readable.from([bytes]).pipe(createGunzip({ chunkSize: 64 * 1024 }));
  try {
    for await (const chunk of z) yield chunk as Buffer;
  } catch (err) {
    throw new ArchiveError(`not valid gzip data (${(err as Error).message})`);
  } finally {
    z.destroy();
  }
}

async function* once(bytes: Buffer): AsyncIterable<Buffer> {
  yield bytes;
}

/** The archive's members, raw (not yet checked). */
export function readArchive(format: ArchiveFormat, bytes: Buffer, bounds: UnpackBounds): AsyncGenerator<ArchiveEntry> {
  if (format === 'zip') return readZip(bytes, bounds);
  return readTar(format === 'tar.gz' ? gunzip(bytes) : once(bytes), bounds);
}

/**
 * Reads every member through the rules and hands it to `visit` (which may consume its
 * body); a body left unread is still read, so every byte counts against the bounds.
 * Returns the rules, which know what the archive holds.
 */
export async function walkArchive(
  format: ArchiveFormat,
  bytes: Buffer,
  bounds: UnpackBounds,
  visit?: (e: CheckedEntry) => Promise<void>,
): Promise<PackageRules> {
  const rules = new PackageRules(bounds);
  for await (const raw of readArchive(format, bytes, bounds)) {
    const e = rules.check(raw);
    if (!e) continue;
    if (visit) await visit(e);
    else for await (const _ of e.body());
  }
  return rules;
}

/**
 * Unpacks into root, an empty directory the caller made and removes on failure: a bound
 * reached stops the walk at that member, before its bytes are written.
 */
export async function unpackArchive(format: ArchiveFormat, bytes: Buffer, root: string, bounds: UnpackBounds): Promise<PackageRules> {
  const writer = TreeWriter.open(root);
  try {
    return await walkArchive(format, bytes, bounds, (e) => writer.write(e));
  } finally {
    writer.close();
  }
}
