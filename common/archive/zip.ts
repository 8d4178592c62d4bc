/**
 * A zip reader by the central directory (the local headers can disagree with it, and the
 * directory is what unzip tools trust). Stored and deflate members; deflate is inflated
 * per member through zlib.inflateRaw as a stream, so a member is never whole in memory,
 * and it is cut off the moment it inflates past the size the directory declares.
 * Encrypted, multi-disk and zip64 archives are refused: a function package needs none.
 */
import { Readable } from 'node:stream';
import { createInflateRaw, crc32 } from 'node:zlib';
import { ArchiveBoundError, ArchiveError } from './errors.js';
import type { UnpackBounds } from './bounds.js';
import { noBody, type ArchiveEntry, type EntryType } from './entry.js';

const EOCD_SIG = 0x06054b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;
const EOCD_MIN = 22;
/** A member's content handed out in chunks of at most this much. */
const CHUNK = 64 * 1024;

const S_IFMT = 0o170000;
const UNIX_TYPES: Record<number, EntryType> = {
  0o100000: 'file',
  0o040000: 'dir',
  0o120000: 'symlink',
  0o020000: 'char',
  0o060000: 'block',
  0o010000: 'fifo',
};

interface CentralEntry {
  name: string;
  type: EntryType;
  mode: number;
  method: number;
  crc: number;
  csize: number;
  usize: number;
  localOffset: number;
}

function findEocd(buf: Buffer): number {
  const lowest = Math.max(0, buf.length - EOCD_MIN - 0xffff);
  for (let i = buf.length - EOCD_MIN; i >= lowest; i--) if (buf.readUInt32LE(i) === EOCD_SIG) return i;
  throw new ArchiveError('not a zip archive: no end of central directory record');
}

function centralDirectory(buf: Buffer, bounds: UnpackBounds): CentralEntry[] {
  const eocd = findEocd(buf);
  const disk = buf.readUInt16LE(eocd + 4);
  const cdDisk = buf.readUInt16LE(eocd + 6);
  const count = buf.readUInt16LE(eocd + 10);
  const cdSize = buf.readUInt32LE(eocd + 12);
  const cdOffset = buf.readUInt32LE(eocd + 16);
  if (disk !== 0 || cdDisk !== 0) throw new ArchiveError('multi-disk zip archives are not supported');
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) throw new ArchiveError('zip64 archives are not supported');
  // Refused before the directory is walked: the count is the archive's own claim.
  if (count > bounds.maxEntries) throw new ArchiveBoundError('maxEntries', bounds.maxEntries, `the zip archive has ${count} members`);
  if (cdOffset + cdSize > eocd) throw new ArchiveError('not a zip archive: the central directory lies outside the file');
  const out: CentralEntry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > eocd || buf.readUInt32LE(p) !== CEN_SIG) throw new ArchiveError(`not a zip archive: bad central directory entry ${i}`);
    const madeBy = buf.readUInt16LE(p + 4);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    const csize = buf.readUInt32LE(p + 20);
    const usize = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const external = buf.readUInt32LE(p + 38);
    const localOffset = buf.readUInt32LE(p + 42);
    if (p + 46 + nameLen > eocd) throw new ArchiveError(`not a zip archive: bad central directory entry ${i}`);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString(flags & 0x800 ? 'utf8' : 'latin1');
    p += 46 + nameLen + extraLen + commentLen;
    if (flags & 0x1) throw new ArchiveError('encrypted zip members are not supported', name);
    if (csize === 0xffffffff || usize === 0xffffffff || localOffset === 0xffffffff) throw new ArchiveError('zip64 members are not supported', name);
    // Unix zips (made-by host 3) carry st_mode in the high half of the external attributes.
    const unixMode = madeBy >> 8 === 3 ? external >>> 16 : 0;
    let type: EntryType = name.endsWith('/') ? 'dir' : 'file';
    if (unixMode & S_IFMT) {
      const t = UNIX_TYPES[unixMode & S_IFMT];
      if (t === undefined) throw new ArchiveError(`unsupported zip member type (mode ${(unixMode & S_IFMT).toString(8)})`, name);
      type = t;
    }
    const mode = unixMode ? unixMode & 0o7777 : type === 'dir' ? 0o755 : 0o644;
    if (method !== 0 && method !== 8) throw new ArchiveError(`unsupported zip compression method ${method} (supported: stored, deflate)`, name);
    out.push({ name, type, mode, method, crc, csize, usize, localOffset });
  }
  return out;
}

/** The compressed bytes of a member, found through its local header. */
function memberData(buf: Buffer, e: CentralEntry): Buffer {
  const p = e.localOffset;
  if (p + 30 > buf.length || buf.readUInt32LE(p) !== LOC_SIG) throw new ArchiveError('not a zip archive: bad local header', e.name);
  const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
  if (start + e.csize > buf.length) throw new ArchiveError('not a zip archive: the member\'s data lies outside the file', e.name);
  return buf.subarray(start, start + e.csize);
}

async function* stored(data: Buffer): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += CHUNK) yield data.subarray(i, i + CHUNK);
}

async function* content(data: Buffer, e: CentralEntry): AsyncIterable<Buffer> {
  let got = 0;
  let crc = 0;
  const inflate = e.method === 8 ? Readable.from([data]).pipe(createInflateRaw({ chunkSize: CHUNK })) : undefined;
  try {
    for await (const chunk of inflate ?? stored(data)) {
      got += (chunk as Buffer).length;
      if (got > e.usize) throw new ArchiveError(`inflates past the ${e.usize} bytes its directory entry declares`, e.name);
      crc = crc32(chunk as Buffer, crc);
      yield chunk as Buffer;
    }
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError(`corrupt compressed data (${(err as Error).message})`, e.name);
  } finally {
    inflate?.destroy();
  }
  if (got !== e.usize) throw new ArchiveError(`holds ${got} bytes, not the ${e.usize} its directory entry declares`, e.name);
  if (crc >>> 0 !== e.crc) throw new ArchiveError('CRC mismatch: the member is corrupt', e.name);
}

/** The members of a zip archive held in memory (a zip needs random access to its directory). */
export async function* readZip(buf: Buffer, bounds: UnpackBounds): AsyncGenerator<ArchiveEntry> {
  for (const e of centralDirectory(buf, bounds)) {
    if (e.type === 'file' || e.type === 'symlink') {
      const data = memberData(buf, e);
      if (e.type === 'symlink') {
        // A symlink's target is its content; read whole, but bounded by the path bound.
        if (e.usize > bounds.maxPathBytes) throw new ArchiveBoundError('maxPathBytes', bounds.maxPathBytes, 'symlink target too long', e.name);
        const parts: Buffer[] = [];
        for await (const c of content(data, e)) parts.push(c);
        yield { path: e.name, type: 'symlink', mode: e.mode, size: 0, linkTarget: Buffer.concat(parts).toString('utf8'), body: noBody };
      } else {
        yield { path: e.name, type: 'file', mode: e.mode, size: e.usize, body: () => content(data, e) };
      }
    } else {
      yield { path: e.name, type: e.type, mode: e.mode, size: 0, body: noBody };
    }
  }
}
