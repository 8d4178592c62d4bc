/**
 * A streaming tar reader: ustar, pax extended headers (path, linkpath, size) and GNU long
 * names ('L', 'K'). Headers are checked by their checksum, so junk (a gzip of anything)
 * is refused at its first block instead of being guessed at.
 *
 * Bounds the reader itself must keep, because they concern bytes no member accounts for:
 * a pax or long-name header's size, and the whole stream (padding and headers over the
 * content bound), so that gigabytes of metadata cannot be fed to it either.
 */
import { ArchiveBoundError, ArchiveError } from './errors.js';
import type { UnpackBounds } from './bounds.js';
import { noBody, type ArchiveEntry, type EntryType } from './entry.js';
import { ByteReader } from './source.js';

const BLOCK = 512;
/** A pax header holds a few records (path, linkpath, times); 64 KiB is generous. */
const MAX_META_BYTES = 64 * 1024;
/** Body chunks handed out at most this large. */
const CHUNK = 64 * 1024;

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: a regular file everywhere but a few old systems
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

function cstring(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul === -1 ? b.length : nul).toString('utf8');
}

/** Octal, or GNU's base-256 (high bit set) for values past 8 GiB. */
function numeric(b: Buffer, what: string, at: number): number {
  if (b[0]! & 0x80) {
    if (b[0] === 0xff) throw new ArchiveError(`not a tar archive: negative ${what} in the header at offset ${at}`);
    let n = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) n = n * 256 + b[i]!;
    return n;
  }
  const s = cstring(b).replace(/ +$/, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new ArchiveError(`not a tar archive: bad ${what} field in the header at offset ${at}`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  const s = cstring(h.subarray(148, 156)).trim();
  return /^[0-7]+$/.test(s) && parseInt(s, 8) === sum;
}

/**
 * Records of a pax extended header: "<len> <key>=<value>\n", len counting the whole record.
 * Values stay bytes: an xattr's (security.capability) is binary.
 */
function paxRecords(data: Buffer, at: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    const len = sp === -1 ? NaN : Number(data.subarray(i, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= sp - i || i + len > data.length || data[i + len - 1] !== 0x0a) {
      throw new ArchiveError(`not a tar archive: malformed pax header at offset ${at}`);
    }
    const rec = data.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
}

const pad = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;

const SCHILY_XATTR = 'SCHILY.xattr.';

/** A numeric pax record (uid, gid, mtime with its fraction), or the header's value. */
function paxNumber(pax: Map<string, Buffer>, key: string, fallback: number, at: number): number {
  const v = pax.get(key)?.toString('ascii');
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === '' || !Number.isFinite(n) || n < 0) throw new ArchiveError(`not a tar archive: bad pax ${key} at offset ${at}`);
  return n;
}

function xattrsOf(pax: Map<string, Buffer>): Map<string, Buffer> | undefined {
  let out: Map<string, Buffer> | undefined;
  for (const [k, v] of pax) {
    if (!k.startsWith(SCHILY_XATTR) || k.length === SCHILY_XATTR.length) continue;
    (out ??= new Map()).set(k.slice(SCHILY_XATTR.length), v);
  }
  return out;
}

/** The members of a tar stream, in order. Stop iterating at any time: the source is closed. */
export async function* readTar(source: AsyncIterable<Buffer>, bounds: UnpackBounds): AsyncGenerator<ArchiveEntry> {
  const r = new ByteReader(source);
  // Content is bounded by maxUnpackedBytes (rules.ts); this bounds the rest of the stream.
  const maxStream = bounds.maxUnpackedBytes + (bounds.maxEntries + 1) * 4 * BLOCK + 4 * MAX_META_BYTES;
  try {
    let pax = new Map<string, Buffer>();
    let longName: string | undefined;
    let longLink: string | undefined;
    for (;;) {
      const at = r.consumed;
      if (at > maxStream) throw new ArchiveBoundError('maxUnpackedBytes', bounds.maxUnpackedBytes, 'the tar stream is larger than its content bound allows');
      const h = await r.read(BLOCK);
      if (h.length === 0 && at === 0) throw new ArchiveError('not a tar archive: it is empty');
      // Two zero blocks end the archive; whatever follows (often more zeros) is not read.
      // An archive cut short after its last member is accepted, as GNU tar does.
      if (h.length === 0 || h.every((b) => b === 0)) return;
      if (h.length < BLOCK) throw new ArchiveError(`not a tar archive: truncated header at offset ${at}`);
      if (!checksumOk(h)) throw new ArchiveError(`not a tar archive: bad header checksum at offset ${at}`);

      const flag = String.fromCharCode(h[156]!);
      const size = numeric(h.subarray(124, 136), 'size', at);
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (size > MAX_META_BYTES) throw new ArchiveBoundError('metadata header', MAX_META_BYTES, `a ${flag} header of ${size} bytes at offset ${at} is too large`);
        const data = await r.read(size + pad(size));
        if (data.length < size + pad(size)) throw new ArchiveError(`not a tar archive: truncated at offset ${r.consumed}`);
        const body = data.subarray(0, size);
        if (flag === 'x') pax = paxRecords(body, at);
        else if (flag === 'L') longName = cstring(body);
        else if (flag === 'K') longLink = cstring(body);
        // 'g' (global) records set defaults for later members; none of them is one we use.
        continue;
      }

      const magic = h.subarray(257, 263).toString('latin1');
      let name = cstring(h.subarray(0, 100));
      // ustar splits long names into prefix/name; GNU's magic ("ustar  ") uses that area for times.
      if (magic === 'ustar\0') {
        const prefix = cstring(h.subarray(345, 500));
        if (prefix) name = `${prefix}/${name}`;
      }
      const path = pax.get('path')?.toString('utf8') ?? longName ?? name;
      const linkTarget = pax.get('linkpath')?.toString('utf8') ?? longLink ?? cstring(h.subarray(157, 257));
      const paxSize = pax.get('size')?.toString('ascii');
      const uid = paxNumber(pax, 'uid', numeric(h.subarray(108, 116), 'uid', at), at);
      const gid = paxNumber(pax, 'gid', numeric(h.subarray(116, 124), 'gid', at), at);
      const mtime = paxNumber(pax, 'mtime', numeric(h.subarray(136, 148), 'mtime', at), at);
      const xattrs = xattrsOf(pax);
      const dev = flag === '3' || flag === '4' ? { devMajor: numeric(h.subarray(329, 337), 'devmajor', at), devMinor: numeric(h.subarray(337, 345), 'devminor', at) } : {};
      const realSize = paxSize !== undefined ? Number(paxSize) : size;
      if (!Number.isSafeInteger(realSize) || realSize < 0) throw new ArchiveError(`not a tar archive: bad size in the header at offset ${at}`, path);
      pax = new Map();
      longName = longLink = undefined;

      let type = TYPES[flag];
      if (type === undefined) throw new ArchiveError(`unsupported tar member type '${flag === '\0' ? '\\0' : flag}' (supported: files, directories, symlinks, hard links)`, path);
      if (type === 'file' && path.endsWith('/')) type = 'dir'; // pre-POSIX tars mark directories by the slash
      const mode = numeric(h.subarray(100, 108), 'mode', at) & 0o7777;
      // Links and directories carry no data whatever their size field says (POSIX); any
      // other member's size is data, skipped when the rules refuse it.
      const dataBytes = type === 'dir' || type === 'symlink' || type === 'hardlink' ? 0 : realSize;
      let left = dataBytes;
      const body =
        type === 'file'
          ? async function* (): AsyncIterable<Buffer> {
              while (left > 0) {
                const chunk = await r.some(Math.min(left, CHUNK));
                if (chunk.length === 0) throw new ArchiveError(`not a tar archive: truncated inside the member's content`, path);
                left -= chunk.length;
                yield chunk;
              }
            }
          : noBody;
      yield {
        path,
        type,
        mode,
        size: type === 'file' ? realSize : 0,
        ...(type === 'symlink' || type === 'hardlink' ? { linkTarget } : {}),
        body,
        uid,
        gid,
        mtime,
        ...dev,
        ...(xattrs ? { xattrs } : {}),
      };
      // Whatever of the body the consumer left, and the padding, is skipped.
      // A stream that ends once the last member's content is whole, without its padding or
      // the end blocks, is accepted: umoci 0.4.7 (Debian 12) writes its layers so, and Go's
      // archive/tar, which the registry ecosystem uses, reads them. The content itself, and
      // so the diff_id over the stream, is complete; a cut inside content stays an error.
      let skip = left + pad(dataBytes);
      while (skip > 0) {
        const chunk = await r.some(Math.min(skip, CHUNK));
        if (chunk.length === 0) {
          if (skip <= pad(dataBytes)) return;
          throw new ArchiveError(`not a tar archive: truncated inside the member's content`, path);
        }
        skip -= chunk.length;
      }
    }
  } finally {
    await r.close();
  }
}
