import { constants } from 'node:os';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** A failed system call: names the call, the path it acted on, the errno, and a hint. */
export class SyscallError extends Error {
  readonly code = 'SYSCALL_FAILED';
  readonly errno: number;
  readonly errnoName: string;
  constructor(
    readonly syscall: string,
    errno: number,
    readonly path?: string,
    hint?: string,
  ) {
    const name = errnoName(errno);
    super(`${syscall}(${path ?? ''}) failed: ${name}${hint ? `; ${hint}` : ''}`);
    this.name = 'SyscallError';
    this.errno = errno;
    this.errnoName = name;
  }
}
