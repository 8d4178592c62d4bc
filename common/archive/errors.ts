/**
 * What goes wrong reading or unpacking an archive. Messages name the member and the rule
 * or bound it broke, never a host path or a command: they reach API callers as they are
 * (the gateway's 400/413, the worker's CODE_UNPACK_FAILED).
 */

export class ArchiveError extends Error {
  /** The member's path inside the archive, when one is to blame. */
  readonly member: string | undefined;

  constructor(message: string, member?: string) {
    // A hostile name can be 64 KiB (a pax header): the message shows its start only.
    const shown = member !== undefined && member.length > 256 ? `${member.slice(0, 256)}...` : member;
    super(shown === undefined ? message : `member ${JSON.stringify(shown)}: ${message}`);
    this.name = new.target.name;
    this.member = member;
  }
}

/** A bound of UnpackBounds was reached: reading stopped there, nothing past it was written. */
export class ArchiveBoundError extends ArchiveError {
  constructor(
    readonly bound: string,
    readonly limit: number,
    message: string,
    member?: string,
  ) {
    super(`${message} (bound ${bound} = ${limit})`, member);
  }
}
