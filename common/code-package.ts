/**
 * The deploy's check of a package: streamed through the same reader, rules and bounds the
 * worker unpacks with (common/archive), without writing anything, so that a package that
 * cannot be unpacked is refused at deploy with the member and rule or bound it broke,
 * instead of failing every invoke later. Answers never show host paths or commands: there
 * are none in this check.
 */
import { ArchiveBoundError, ArchiveError, walkArchive, type UnpackBounds } from './archive/index.js';
import { PackageTooLargeError, ValidationError } from './errors.js';
import { entryParts, type CodeRef } from './function-spec.js';

export async function checkPackage(ref: CodeRef, bytes: Buffer, bounds: UnpackBounds): Promise<void> {
  if (ref.kind !== 'package') return;
  let rules;
  try {
    rules = await walkArchive(ref.format, bytes, bounds);
  } catch (err) {
    if (err instanceof ArchiveBoundError) throw new PackageTooLargeError(err.message, err.bound, err.limit);
    const message = err instanceof ArchiveError ? err.message : `cannot be read (${(err as Error).message})`;
    throw new ValidationError(`invalid function spec: package: ${message}`, [{ path: 'package', message }]);
  }
  const kind = rules.kindOf(entryParts(ref.entry));
  if (kind !== 'file' && kind !== 'symlink') {
    const message = `${JSON.stringify(ref.entry)} is not a file in the package${kind === 'dir' ? ' (it is a directory)' : ''}`;
    throw new ValidationError(`invalid function spec: entry: ${message}`, [{ path: 'entry', message }]);
  }
}
