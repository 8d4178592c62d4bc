/** Errors of the container engine. Each has a stable code; the cause and a hint go in the message. */
export type EngineErrorCode =
  | 'INVALID_SPEC'
  | 'CONTAINER_NOT_FOUND'
  | 'CONTAINER_EXISTS'
  | 'INVALID_STATE'
  | 'CREATE_FAILED'
  | 'EXEC_FAILED'
  | 'INIT_BINARY_MISSING'
  | 'NETWORK_UNAVAILABLE'
  | 'ADDRESSES_EXHAUSTED'
  | 'USERNS_UNSUPPORTED';

export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EngineError';
  }
}

export class InvalidSpecError extends EngineError {
  constructor(readonly field: string, problem: string) {
    super('INVALID_SPEC', `container spec: ${field} ${problem}`, { field });
  }
}
