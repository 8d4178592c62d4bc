/**
 * The content digest of a layer directory: sha256 over a sorted listing with one line
 * per entry (type, permission bits, path, and the sha256 of a file's bytes or a
 * symlink's target). Owners and times are left out on purpose: the same recipe built
 * twice, or on another day, must give the same digest.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';

const CHUNK = 1 << 20;

export function fileSha256(file: string, buf: Buffer = Buffer.allocUnsafe(CHUNK)): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

export interface TreeDigest {
  digest: string;
  files: number;
  bytes: number;
}

export function digestTree(root: string): TreeDigest {
  const listing = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK);
  let files = 0;
  let bytes = 0;
  const walk = (rel: string): void => {
    // Byte order of names, not locale order: the listing must not depend on the host.
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const r = `${rel}/${name}`;
      const abs = path.join(root, r);
      const st = lstatSync(abs);
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      if (st.isDirectory()) {
        listing.update(`d ${mode} ${r}\n`);
        walk(r);
      } else if (st.isSymbolicLink()) {
        listing.update(`l ${r} -> ${readlinkSync(abs)}\n`);
      } else if (st.isFile()) {
        listing.update(`f ${mode} ${r} ${fileSha256(abs, buf)}\n`);
        files++;
        bytes += st.size;
      } else {
        listing.update(`? ${mode} ${r}\n`);
      }
    }
  };
  walk('');
  return { digest: `sha256:${listing.digest('hex')}`, files, bytes };
}
