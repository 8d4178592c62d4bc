/** Errors of the seccomp compiler. Each has a stable code; the cause and a hint go in the message. */
export type SeccompErrorCode = 'INVALID_PROFILE' | 'UNKNOWN_SYSCALL' | 'UNSUPPORTED_ARCH' | 'PROGRAM_TOO_LONG';

export class SeccompError extends Error {
  constructor(
    readonly code: SeccompErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'SeccompError';
  }
}
