/**
 * What a member of an image layer may be. Image layers are not function packages
 * (common/archive/rules.ts): owners, modes (setuid included: containers run with
 * no_new_privs), absolute symlinks and a later member replacing an earlier one are all
 * normal in them, and whiteouts (.wh.*) are instructions, not files. What stays the same is
 * that no name may leave the layer: these rules refuse ".." and NUL bytes, read absolute
 * names relative to the layer root (as GNU tar does), and refuse a non-directory naming the
 * root itself (a symlink named "." or "/": umoci's CVE-2021-29136). Symlinks are never
 * judged by their target here: the writer resolves every path with openat2(RESOLVE_IN_ROOT),
 * so a link cannot lead outside whatever it says.
 *
 * Bounds (bytes, entries, path lengths) are counted here, the moment a header is read and
 * before a byte of its content is written.
 */
import { ArchiveBoundError, ArchiveError, type ArchiveEntry, type UnpackBounds } from '../../../../common/archive/index.js';

/** A path below the layer root: components, never '', '.', '..' or containing '/'. */
export type Parts = string[];

export type LayerOp =
  | { op: 'root'; meta: Meta }
  | { op: 'dir' | 'file' | 'fifo'; parts: Parts; meta: Meta; size: number; body(): AsyncIterable<Buffer> }
  | { op: 'symlink'; parts: Parts; meta: Meta; target: string }
  | { op: 'hardlink'; parts: Parts; to: Parts }
  /** `.wh.NAME`: an OverlayFS whiteout (0/0 character device) at parts. */
  | { op: 'whiteout'; parts: Parts }
  /** `.wh..wh..opq` in a directory: that directory (parts, [] for the root) hides the layers below. */
  | { op: 'opaque'; parts: Parts }
  /** Nothing to write: a device node, or aufs metadata (.wh..wh.plnk and friends). */
  | { op: 'skip'; reason: 'device' | 'aufs' };

export interface Meta {
  uid: number;
  gid: number;
  mode: number;
  mtime: number;
  xattrs: [string, Buffer][];
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
/** chown(2) takes a 32-bit id, and (uid_t)-1 means "leave unchanged". */
const MAX_ID = 0xffff_fffe;

/** xattrs a layer may set: user data and file capabilities; trusted.* (overlay's own), ACLs and LSM labels never. */
export function xattrAllowed(name: string): boolean {
  return name.startsWith('user.') || name === 'security.capability';
}

/** A member name as components below the layer root. */
export function layerParts(raw: string, bounds: UnpackBounds, member = raw): Parts {
  if (Buffer.byteLength(raw) > bounds.maxPathBytes) throw new ArchiveBoundError('maxPathBytes', bounds.maxPathBytes, 'path too long', member);
  if (raw.includes('\0')) throw new ArchiveError('path contains a NUL byte', member);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new ArchiveError('path traversal: ".." is not allowed in layer member paths', member);
    if (Buffer.byteLength(p) > bounds.maxNameBytes) throw new ArchiveBoundError('maxNameBytes', bounds.maxNameBytes, 'path component too long', member);
  }
  return parts;
}

export class LayerRules {
  private entries = 0;
  private bytes = 0;
  /** What the rules dropped, for the unpack's report. */
  readonly dropped = { devices: 0, aufs: 0, xattrs: 0 };

  constructor(private readonly bounds: UnpackBounds) {}

  /** Counts one inode: every member, and every parent directory the writer creates for one. */
  count(member: string): void {
    if (++this.entries > this.bounds.maxEntries) {
      throw new ArchiveBoundError('maxEntries', this.bounds.maxEntries, 'too many members in the layer (directories included)', member);
    }
  }

  get totals(): { entries: number; bytes: number } {
    return { entries: this.entries, bytes: this.bytes };
  }

  check(e: ArchiveEntry): LayerOp {
    const member = e.path;
    const parts = layerParts(e.path, this.bounds);
    const name = parts[parts.length - 1];
    if (name !== undefined && name.startsWith(WHITEOUT_PREFIX)) return this.whiteout(parts, name, member);
    if (e.type === 'char' || e.type === 'block') {
      this.dropped.devices++;
      return { op: 'skip', reason: 'device' };
    }
    const meta = this.meta(e, member);
    if (parts.length === 0) {
      if (e.type === 'dir') return { op: 'root', meta };
      throw new ArchiveError(`a ${e.type} names the layer root: only a directory may (CVE-2021-29136)`, member);
    }
    this.count(member);
    switch (e.type) {
      case 'symlink': {
        const target = e.linkTarget ?? '';
        if (target === '') throw new ArchiveError('symlink with an empty target', member);
        if (target.includes('\0')) throw new ArchiveError('symlink target contains a NUL byte', member);
        if (Buffer.byteLength(target) > this.bounds.maxPathBytes) throw new ArchiveBoundError('maxPathBytes', this.bounds.maxPathBytes, 'symlink target too long', member);
        return { op: 'symlink', parts, meta, target };
      }
      case 'hardlink': {
        const to = layerParts(e.linkTarget ?? '', this.bounds, member);
        if (to.length === 0) throw new ArchiveError('hard link to the layer root', member);
        return { op: 'hardlink', parts, to };
      }
      case 'file':
        if (this.bytes + e.size > this.bounds.maxUnpackedBytes) {
          throw new ArchiveBoundError('maxUnpackedBytes', this.bounds.maxUnpackedBytes, `the layer unpacks to more than ${this.bounds.maxUnpackedBytes} bytes`, member);
        }
        this.bytes += e.size;
        return { op: 'file', parts, meta, size: e.size, body: e.body };
      default:
        return { op: e.type, parts, meta, size: 0, body: e.body };
    }
  }

  private whiteout(parts: Parts, name: string, member: string): LayerOp {
    this.count(member);
    if (name === OPAQUE_MARKER) return { op: 'opaque', parts: parts.slice(0, -1) };
    // Other .wh..wh. names are aufs' bookkeeping (hard link targets, its own dirs): not content.
    if (name.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) {
      this.dropped.aufs++;
      return { op: 'skip', reason: 'aufs' };
    }
    const hidden = name.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw new ArchiveError('whiteout of no name', member);
    return { op: 'whiteout', parts: [...parts.slice(0, -1), hidden] };
  }

  private meta(e: ArchiveEntry, member: string): Meta {
    const uid = e.uid ?? 0;
    const gid = e.gid ?? 0;
    for (const [what, id] of [['uid', uid], ['gid', gid]] as const) {
      if (!Number.isSafeInteger(id) || id < 0 || id > MAX_ID) throw new ArchiveError(`${what} ${id} is not a 32-bit id`, member);
    }
    const xattrs: [string, Buffer][] = [];
    for (const [k, v] of e.xattrs ?? []) {
      if (xattrAllowed(k)) xattrs.push([k, v]);
      else this.dropped.xattrs++;
    }
    return { uid, gid, mode: e.mode & 0o7777, mtime: e.mtime ?? 0, xattrs };
  }
}
