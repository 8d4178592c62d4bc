/** One member of an archive, as every reader (tar, zip) yields it. */

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface ArchiveEntry {
  /** The path exactly as the archive spells it; rules.ts decides what it may be. */
  path: string;
  type: EntryType;
  /** Permission bits as the archive gives them (setuid and friends included). */
  mode: number;
  /** Content bytes of a file; 0 for everything else. */
  size: number;
  /** A symlink's target, or the member a hard link names. */
  linkTarget?: string;
  /**
   * A file's content, streamed in bounded chunks. Read it before asking the reader for
   * the next member, or leave it: the reader skips what was not read.
   */
  body(): AsyncIterable<Buffer>;
  /** Owner, group and mtime (seconds) as the header (or a pax record) says; tar only. */
  uid?: number;
  gid?: number;
  mtime?: number;
  /** Device numbers of a char or block device; tar only. */
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes from pax SCHILY.xattr.* records, values as raw bytes; tar only. */
  xattrs?: Map<string, Buffer>;
}

export async function* noBody(): AsyncIterable<Buffer> {}
