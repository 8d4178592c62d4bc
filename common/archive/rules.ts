/**
 * What a member may be, decided once for every reader and for both uses (the deploy's
 * check without writing, the worker's unpack): paths stay below the root, nothing is
 * reached through a symlink or a file, no device nodes or FIFOs (refused, not skipped: a
 * function package has no use for one, and a package silently missing members would fail
 * later and less clearly), hard links only to earlier files of the same package, and the
 * bounds stop the walk the moment one is reached.
 *
 * The members seen so far are kept as a tree of path components, so memory is bounded by
 * maxEntries names of at most maxNameBytes, whatever the paths' lengths.
 */
import { ArchiveBoundError, ArchiveError } from './errors.js';
import type { UnpackBounds } from './bounds.js';
import type { ArchiveEntry } from './entry.js';

type Kind = 'dir' | 'file' | 'symlink';

interface Node {
  kind: Kind;
  children?: Map<string, Node>;
}

/** A member that passed the rules, in the form the writer takes. */
export interface CheckedEntry {
  /** Path components below the root; never empty, '.', '..' or containing '/'. */
  parts: string[];
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  /** 0o755 or 0o644 (as chmod u=rwX,go=rX): setuid, setgid and sticky bits never survive. */
  mode: number;
  size: number;
  linkTarget?: string;
  /** For a hard link: the components of the member it links to. */
  linkParts?: string[];
  body(): AsyncIterable<Buffer>;
}

/**
 * A member path as components below the root. Leading "./" and repeated slashes are
 * forgiven (tar -C dir . writes "./x"); absolute paths, ".." and NUL bytes are refused.
 */
export function pathParts(raw: string, bounds: Pick<UnpackBounds, 'maxPathBytes' | 'maxNameBytes'>, member = raw): string[] {
  if (Buffer.byteLength(raw) > bounds.maxPathBytes) throw new ArchiveBoundError('maxPathBytes', bounds.maxPathBytes, 'path too long', member);
  if (raw.includes('\0')) throw new ArchiveError('path contains a NUL byte', member);
  if (raw.startsWith('/')) throw new ArchiveError('absolute path: members must be relative to the package root', member);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new ArchiveError('path traversal: ".." is not allowed in member paths', member);
    if (Buffer.byteLength(p) > bounds.maxNameBytes) throw new ArchiveBoundError('maxNameBytes', bounds.maxNameBytes, 'path component too long', member);
  }
  return parts;
}

export class PackageRules {
  private readonly root: Node = { kind: 'dir', children: new Map() };
  private entries = 0;
  private bytes = 0;

  constructor(private readonly bounds: UnpackBounds) {}

  private count(member: string): void {
    if (++this.entries > this.bounds.maxEntries) {
      throw new ArchiveBoundError('maxEntries', this.bounds.maxEntries, 'too many members (directories included)', member);
    }
  }

  /** The node of parts' parent directory, creating implicit directories (each counts as an entry). */
  private parent(parts: string[], member: string): Node {
    let node = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      let child = node.children!.get(name);
      if (!child) {
        this.count(member);
        child = { kind: 'dir', children: new Map() };
        node.children!.set(name, child);
      } else if (child.kind !== 'dir') {
        const through = parts.slice(0, i + 1).join('/');
        throw new ArchiveError(`its path goes through ${child.kind === 'symlink' ? 'the symlink' : 'the file'} ${JSON.stringify(through)}`, member);
      }
      node = child;
    }
    return node;
  }

  /** What a path of the package is, as far as the members seen so far tell. */
  kindOf(parts: string[]): Kind | undefined {
    let node: Node | undefined = this.root;
    for (const p of parts) {
      node = node?.children?.get(p);
      if (!node) return undefined;
    }
    return node?.kind;
  }

  /** Checks one member; returns it in the writer's form, or undefined for the root itself. */
  check(e: ArchiveEntry): CheckedEntry | undefined {
    const member = e.path;
    if (e.type === 'char' || e.type === 'block' || e.type === 'fifo') {
      const what = { char: 'a character device', block: 'a block device', fifo: 'a FIFO' }[e.type];
      throw new ArchiveError(`is ${what}: packages may not contain device nodes or FIFOs`, member);
    }
    const parts = pathParts(e.path, this.bounds);
    if (parts.length === 0) {
      if (e.type === 'dir') return undefined; // "./": the root, which exists already
      throw new ArchiveError('a member other than a directory names the package root', member);
    }
    const path = parts.join('/');
    const dir = this.parent(parts, member);
    const name = parts[parts.length - 1]!;
    const existing = dir.children!.get(name);
    if (e.type === 'dir') {
      if (existing && existing.kind !== 'dir') throw new ArchiveError(`is a directory, but an earlier member made it a ${existing.kind}`, member);
      if (!existing) {
        this.count(member);
        dir.children!.set(name, { kind: 'dir', children: new Map() });
      }
      return { parts, path, type: 'dir', mode: 0o755, size: 0, body: e.body };
    }
    if (existing) throw new ArchiveError('appears twice in the package', member);
    this.count(member);

    let linkParts: string[] | undefined;
    if (e.type === 'symlink') {
      checkSymlinkTarget(e.linkTarget ?? '', parts, this.bounds, member);
      dir.children!.set(name, { kind: 'symlink' });
    } else if (e.type === 'hardlink') {
      linkParts = pathParts(e.linkTarget ?? '', this.bounds, member);
      if (this.kindOf(linkParts) !== 'file') {
        throw new ArchiveError(`hard link to ${JSON.stringify(e.linkTarget)}, which is not an earlier file of the package`, member);
      }
      dir.children!.set(name, { kind: 'file' });
    } else {
      if (this.bytes + e.size > this.bounds.maxUnpackedBytes) {
        throw new ArchiveBoundError('maxUnpackedBytes', this.bounds.maxUnpackedBytes, `unpacks to more than ${this.bounds.maxUnpackedBytes} bytes`, member);
      }
      dir.children!.set(name, { kind: 'file' });
    }
    this.bytes += e.size;
    // The content is counted as it flows too: a reader's declared size is checked above,
    // but only the bytes themselves are the truth.
    async function* counted(): AsyncIterable<Buffer> {
      let got = 0;
      for await (const chunk of e.body()) {
        got += chunk.length;
        if (got > e.size) throw new ArchiveError(`holds more than the ${e.size} bytes its header declares`, member);
        yield chunk;
      }
    }
    return {
      parts,
      path,
      type: e.type,
      mode: e.mode & 0o111 ? 0o755 : 0o644,
      size: e.type === 'file' ? e.size : 0,
      ...(e.linkTarget !== undefined ? { linkTarget: e.linkTarget } : {}),
      ...(linkParts ? { linkParts } : {}),
      body: e.type === 'file' ? counted : e.body,
    };
  }
}

/**
 * A symlink is written as a link and never followed while unpacking; its target must
 * still stay inside the package when read from where the link sits, so that nothing on
 * the host that walks the layer (or a later member) is led out of it.
 */
function checkSymlinkTarget(target: string, linkParts: string[], bounds: UnpackBounds, member: string): void {
  if (target === '') throw new ArchiveError('symlink with an empty target', member);
  if (target.includes('\0')) throw new ArchiveError('symlink target contains a NUL byte', member);
  if (Buffer.byteLength(target) > bounds.maxPathBytes) throw new ArchiveBoundError('maxPathBytes', bounds.maxPathBytes, 'symlink target too long', member);
  if (target.startsWith('/')) throw new ArchiveError(`symlink to the absolute path ${JSON.stringify(target)}: links must stay inside the package`, member);
  // ".." only before the first name: those climb the link's own parents, which are real
  // directories (no member goes through a symlink). A ".." after a name could climb out of
  // another symlink instead (z -> x/y/.. with x/y -> ..), which a lexical count misses.
  let depth = linkParts.length - 1;
  let named = false;
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p !== '..') {
      named = true;
      depth++;
      continue;
    }
    if (named) throw new ArchiveError(`symlink to ${JSON.stringify(target)}: ".." may only lead the target (a name before it could be another symlink)`, member);
    if (--depth < 0) throw new ArchiveError(`symlink to ${JSON.stringify(target)} points outside the package`, member);
  }
}
