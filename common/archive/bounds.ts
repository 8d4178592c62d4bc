/**
 * How much an archive may unpack to. The same bounds run at deploy (the gateway streams
 * the package through the reader without writing) and on the worker (which writes it), so
 * a package the gateway accepted unpacks on every worker configured alike.
 */

export interface UnpackBounds {
  /** Bytes of file content after decompression (Lambda's unzipped limit: 250 MB). */
  maxUnpackedBytes: number;
  /** Members, directories created implicitly for a member's parents included: each is an inode. */
  maxEntries: number;
  /** Bytes of a member's path, and of a symlink's target (Linux PATH_MAX). */
  maxPathBytes: number;
  /** Bytes of one path component (Linux NAME_MAX). */
  maxNameBytes: number;
}

export const DEFAULT_UNPACK_BOUNDS: UnpackBounds = {
  maxUnpackedBytes: 250 * 1000 * 1000,
  maxEntries: 10_000,
  maxPathBytes: 4096,
  maxNameBytes: 255,
};
