/**
 * Errors shared by gateway, scheduler and worker. Each carries a stable `code` string that
 * travels unchanged through the queue (InvocationResult.error.code), the invocation record
 * and the HTTP body; the HTTP status for each code lives in exactly one table
 * (gateway/errors.ts), never here, so common/ stays free of HTTP.
 */

export const ErrorCode = {
  // Requests the caller can fix.
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  INVALID_JSON: 'INVALID_JSON',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  FUNCTION_NOT_FOUND: 'FUNCTION_NOT_FOUND',
  VERSION_NOT_FOUND: 'VERSION_NOT_FOUND',
  INVOCATION_NOT_FOUND: 'INVOCATION_NOT_FOUND',
  ROUTE_NOT_FOUND: 'ROUTE_NOT_FOUND',
  // The function is running as many invocations as its `concurrency` allows.
  CONCURRENCY_LIMIT: 'CONCURRENCY_LIMIT',
  // The function's async invocations waiting to run hold as many bytes as it may queue.
  QUEUE_FULL: 'QUEUE_FULL',
  // Outcomes of running a function.
  FUNCTION_ERROR: 'FUNCTION_ERROR',
  TIMEOUT: 'TIMEOUT',
  OOM_KILLED: 'OOM_KILLED',
  RUNTIME_CRASHED: 'RUNTIME_CRASHED',
  NO_CAPACITY: 'NO_CAPACITY',
  // Ours.
  UNAVAILABLE: 'UNAVAILABLE',
  // Redis is at its maxmemory (noeviction): nothing new is accepted until it has room.
  STORAGE_FULL: 'STORAGE_FULL',
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** The serialisable form of an error: what crosses the queue and lands in records. */
export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  stack?: string;
  details?: unknown;
}

export class FaasboxError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }

  toInfo(): ErrorInfo {
    const info: ErrorInfo = { code: this.code, message: this.message };
    if (this.details !== undefined) info.details = this.details;
    return info;
  }

  /** Rebuild an error that crossed the queue as plain data. */
  static fromInfo(info: ErrorInfo): FaasboxError {
    const err = new FaasboxError(isErrorCode(info.code) ? info.code : ErrorCode.INTERNAL, info.message, {
      details: info.details,
    });
    if (info.stack !== undefined) err.stack = info.stack;
    return err;
  }
}

export interface ValidationIssue {
  path: string;
  message: string;
}

export class ValidationError extends FaasboxError {
  constructor(message: string, issues: ValidationIssue[]) {
    super(ErrorCode.VALIDATION_FAILED, message, { details: { issues } });
  }
  get issues(): ValidationIssue[] {
    return (this.details as { issues: ValidationIssue[] }).issues;
  }
}

export class InvalidJsonError extends FaasboxError {
  constructor(cause?: unknown) {
    super(ErrorCode.INVALID_JSON, 'request body is not valid JSON', { cause });
  }
}

export class UnsupportedMediaTypeError extends FaasboxError {
  constructor(got: string | undefined, expected = 'application/json') {
    super(ErrorCode.UNSUPPORTED_MEDIA_TYPE, `content-type must be ${expected}, got ${got ?? 'none'}`);
  }
}

export class PayloadTooLargeError extends FaasboxError {
  constructor(limitBytes: number) {
    super(ErrorCode.PAYLOAD_TOO_LARGE, `request body exceeds ${limitBytes} bytes`, { details: { limitBytes } });
  }
}

export class UnauthorizedError extends FaasboxError {
  constructor(message = 'missing API key: send Authorization: Bearer <key>') {
    super(ErrorCode.UNAUTHORIZED, message);
  }
}

export class ForbiddenError extends FaasboxError {
  constructor(message = 'API key is not valid for this resource') {
    super(ErrorCode.FORBIDDEN, message);
  }
}

export class FunctionNotFoundError extends FaasboxError {
  constructor(name: string) {
    super(ErrorCode.FUNCTION_NOT_FOUND, `function ${JSON.stringify(name)} does not exist`, { details: { name } });
  }
}

export class VersionNotFoundError extends FaasboxError {
  constructor(name: string, version: string) {
    super(ErrorCode.VERSION_NOT_FOUND, `function ${JSON.stringify(name)} has no version ${version}`, {
      details: { name, version },
    });
  }
}

export class InvocationNotFoundError extends FaasboxError {
  constructor(id: string) {
    super(ErrorCode.INVOCATION_NOT_FOUND, `invocation ${JSON.stringify(id)} does not exist or has expired`, {
      details: { id },
    });
  }
}

export class RouteNotFoundError extends FaasboxError {
  constructor(method: string, path: string) {
    super(ErrorCode.ROUTE_NOT_FOUND, `no route for ${method} ${path}`);
  }
}

export class FunctionError extends FaasboxError {
  constructor(message: string, stack?: string) {
    super(ErrorCode.FUNCTION_ERROR, message);
    if (stack !== undefined) this.stack = stack;
  }
}

export class TimeoutError extends FaasboxError {
  constructor(timeoutMs: number) {
    super(ErrorCode.TIMEOUT, `function did not finish within ${timeoutMs} ms`, { details: { timeoutMs } });
  }
}

export class OomKilledError extends FaasboxError {
  constructor(memoryMb: number) {
    super(ErrorCode.OOM_KILLED, `function exceeded its memory limit of ${memoryMb} MB and was killed`, {
      details: { memoryMb },
    });
  }
}

export class RuntimeCrashedError extends FaasboxError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.RUNTIME_CRASHED, message, { cause });
  }
}

export class ConcurrencyLimitError extends FaasboxError {
  constructor(fn: string, limit: number) {
    super(ErrorCode.CONCURRENCY_LIMIT, `function ${fn} is already running ${limit} invocation${limit === 1 ? '' : 's'}, its concurrency limit; retry later`, {
      details: { function: fn, concurrency: limit },
    });
  }
}

export class QueueFullError extends FaasboxError {
  constructor(fn: string, limitBytes: number) {
    super(ErrorCode.QUEUE_FULL, `function ${fn} already has ${limitBytes} bytes of async invocations waiting to run, its limit; retry once some have run`, {
      details: { function: fn, queuedBytesLimit: limitBytes },
    });
  }
}

export class StorageFullError extends FaasboxError {
  /** Seconds a client should wait before retrying (the Retry-After header). */
  readonly retryAfterS = 5;

  constructor(cause?: unknown) {
    super(ErrorCode.STORAGE_FULL, 'the platform\'s storage is full; nothing was accepted, retry later', { cause });
  }

  /** Redis refuses writes past its maxmemory with "OOM command not allowed ..." (noeviction). */
  static matches(err: unknown): boolean {
    return err instanceof Error && /\bOOM command not allowed\b/.test(err.message);
  }
}

export class NoCapacityError extends FaasboxError {
  constructor(message = 'no worker picked up the invocation in time') {
    super(ErrorCode.NO_CAPACITY, message);
  }
}

export class UnavailableError extends FaasboxError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.UNAVAILABLE, message, { cause });
  }
}

export class InternalError extends FaasboxError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.INTERNAL, message, { cause });
  }
}
