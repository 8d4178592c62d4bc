/**
 * Hand-built archives for tests: tar headers and zip records written byte by byte, so a
 * test can make the hostile members real tools refuse to produce (device nodes, "..",
 * absolute paths, a zip whose directory lies about sizes).
 */
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';

export interface TarMember {
  name: string;
  /** '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' FIFO, 'x' pax, 'L' GNU long name. */
  type?: string;
  mode?: number;
  data?: Buffer | string;
  /** Header size when it should differ from data's (a lie, or a body streamed separately). */
  size?: number;
  linkname?: string;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch. */
  mtime?: number;
  devmajor?: number;
  devminor?: number;
}

/** A pax extended header member ('x') carrying records (path, uid, SCHILY.xattr.NAME, ...) for the member after it. */
export function paxMember(records: Record<string, string | Buffer>): TarMember {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len++;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return { name: 'PaxHeader', type: 'x', data: Buffer.concat(parts) };
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

export function tarHeader(m: TarMember): Buffer {
  const h = Buffer.alloc(512);
  const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
  h.write(m.name, 0, 100, 'utf8');
  h.write(octal(m.mode ?? 0o644, 8), 100, 'ascii');
  h.write(octal(m.uid ?? 0, 8), 108, 'ascii');
  h.write(octal(m.gid ?? 0, 8), 116, 'ascii');
  h.write(octal(m.size ?? data.length, 12), 124, 'ascii');
  h.write(octal(m.mtime ?? 0, 12), 136, 'ascii');
  h.write(m.type ?? '0', 156, 'ascii');
  if (m.linkname) h.write(m.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'ascii');
  if (m.devmajor !== undefined) h.write(octal(m.devmajor, 8), 329, 'ascii');
  if (m.devminor !== undefined) h.write(octal(m.devminor, 8), 337, 'ascii');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** A whole tar: each member's header, its data padded to 512, then the two zero blocks. */
export function tar(members: TarMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    parts.push(tarHeader(m), data, pad(data.length));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface ZipMember {
  name: string;
  data?: Buffer | string;
  /** st_mode including the file type (0o100644, 0o120777 for a symlink, 0o020644 for a char device). */
  unixMode?: number;
  deflate?: boolean;
  /** Uncompressed size the central directory claims (a lie when given). */
  declaredSize?: number;
  crc?: number;
}

/** A zip with Unix modes (made-by host 3), stored or deflated members. */
export function zip(members: ZipMember[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    const body = m.deflate ? deflateRawSync(data) : data;
    const name = Buffer.from(m.name, 'utf8');
    const crc = m.crc ?? crc32(data);
    const usize = m.declaredSize ?? data.length;
    const method = m.deflate ? 8 : 0;
    const loc = Buffer.alloc(30);
    loc.writeUInt32LE(0x04034b50, 0);
    loc.writeUInt16LE(20, 4);
    loc.writeUInt16LE(0x800, 6);
    loc.writeUInt16LE(method, 8);
    loc.writeUInt32LE(crc >>> 0, 14);
    loc.writeUInt32LE(body.length, 18);
    loc.writeUInt32LE(usize, 22);
    loc.writeUInt16LE(name.length, 26);
    locals.push(loc, name, body);
    const cen = Buffer.alloc(46);
    cen.writeUInt32LE(0x02014b50, 0);
    cen.writeUInt16LE((3 << 8) | 20, 4);
    cen.writeUInt16LE(20, 6);
    cen.writeUInt16LE(0x800, 8);
    cen.writeUInt16LE(method, 10);
    cen.writeUInt32LE(crc >>> 0, 16);
    cen.writeUInt32LE(body.length, 20);
    cen.writeUInt32LE(usize, 24);
    cen.writeUInt16LE(name.length, 28);
    cen.writeUInt32LE(((m.unixMode ?? (m.name.endsWith('/') ? 0o040755 : 0o100644)) << 16) >>> 0, 38);
    cen.writeUInt32LE(offset, 42);
    centrals.push(cen, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(members.length, 8);
  eocd.writeUInt16LE(members.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

/** A zip of one deflated member of `bytes` zeros, built as a stream (about 1 MB per GiB). */
export async function zeroZip(bytes: number): Promise<Buffer> {
  const { createDeflateRaw } = await import('node:zlib');
  const chunk = Buffer.alloc(1024 * 1024);
  let crc = 0;
  const d = createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  d.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise((r) => d.on('end', r));
  for (let left = bytes; left > 0; left -= chunk.length) {
    const c = chunk.subarray(0, Math.min(left, chunk.length));
    crc = crc32(c, crc);
    if (!d.write(c)) await new Promise((r) => d.once('drain', r));
  }
  d.end();
  await ended;
  const body = Buffer.concat(out);
  // Stored as "pre-deflated": build the records around the compressed body by hand.
  const name = Buffer.from('zeros');
  const loc = Buffer.alloc(30);
  loc.writeUInt32LE(0x04034b50, 0);
  loc.writeUInt16LE(20, 4);
  loc.writeUInt16LE(8, 8);
  loc.writeUInt32LE(crc >>> 0, 14);
  loc.writeUInt32LE(body.length, 18);
  loc.writeUInt32LE(bytes, 22);
  loc.writeUInt16LE(name.length, 26);
  const cen = Buffer.alloc(46);
  cen.writeUInt32LE(0x02014b50, 0);
  cen.writeUInt16LE((3 << 8) | 20, 4);
  cen.writeUInt16LE(20, 6);
  cen.writeUInt16LE(8, 10);
  cen.writeUInt32LE(crc >>> 0, 16);
  cen.writeUInt32LE(body.length, 20);
  cen.writeUInt32LE(bytes, 24);
  cen.writeUInt16LE(name.length, 28);
  cen.writeUInt32LE((0o100644 << 16) >>> 0, 38);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(1, 8);
  eocd.writeUInt16LE(1, 10);
  eocd.writeUInt32LE(46 + name.length, 12);
  eocd.writeUInt32LE(30 + name.length + body.length, 16);
  return Buffer.concat([loc, name, body, cen, name, eocd]);
}

/** A tar.gz of one member of `bytes` zeros (the header, then the zeros), gzipped as a stream. */
export async function zeroTarGz(bytes: number): Promise<Buffer> {
  const { createGzip } = await import('node:zlib');
  const g = createGzip({ level: 9 });
  const out: Buffer[] = [];
  g.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise((r) => g.on('end', r));
  g.write(tarHeader({ name: 'zeros', size: bytes }));
  const chunk = Buffer.alloc(1024 * 1024);
  for (let left = bytes + 1024 + ((512 - (bytes % 512)) % 512); left > 0; left -= chunk.length) {
    if (!g.write(chunk.subarray(0, Math.min(left, chunk.length)))) await new Promise((r) => g.once('drain', r));
  }
  g.end();
  await ended;
  return Buffer.concat(out);
}

/** A tar.gz of `count` empty files. */
export function manyFilesTarGz(count: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; i < count; i++) blocks.push(tarHeader({ name: `f${i}`, data: '' }));
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}
