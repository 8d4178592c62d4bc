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
  TRIGGER_NOT_FOUND: 'TRIGGER_NOT_FOUND',
  DEAD_LETTER_NOT_FOUND: 'DEAD_LETTER_NOT_FOUND',
  ROUTE_NOT_FOUND: 'ROUTE_NOT_FOUND',
  // The request's headers or body did not arrive within the gateway's timeouts.
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  // The function is running as many invocations as its `concurrency` allows.
  CONCURRENCY_LIMIT: 'CONCURRENCY_LIMIT',
  // The function's async invocations waiting to run hold as many bytes as it may queue.
  QUEUE_FULL: 'QUEUE_FULL',
  // Outcomes of running a function.
  FUNCTION_ERROR: 'FUNCTION_ERROR',
  TIMEOUT: 'TIMEOUT',
  OOM_KILLED: 'OOM_KILLED',
  RUNTIME_CRASHED: 'RUNTIME_CRASHED',
  // The function answered with more than the worker accepts (its reply was cut off, its container killed).
  RESULT_TOO_LARGE: 'RESULT_TOO_LARGE',
  NO_CAPACITY: 'NO_CAPACITY',
  // The worker running a sync invocation died (crashed, killed) before it answered.
  WORKER_LOST: 'WORKER_LOST',
  // A version's code could not be unpacked on the worker (the deploy checks packages, so: disk, or a package older than that check).
  CODE_UNPACK_FAILED: 'CODE_UNPACK_FAILED',
  // Images (issue 12): a blob or an uncompressed layer whose sha256 is not the one it is named by.
  DIGEST_MISMATCH: 'DIGEST_MISMATCH',
  // A layer past its unpack bounds (bytes, entries, path length): a decompression bomb, say.
  IMAGE_TOO_LARGE: 'IMAGE_TOO_LARGE',
  // An image whose layer or config breaks the unpack rules (a member leaving its layer, a bad User).
  IMAGE_INVALID: 'IMAGE_INVALID',
  IMAGE_NOT_FOUND: 'IMAGE_NOT_FOUND',
  // An image a live container runs from (or a runtime image the pools use) asked to be removed.
  IMAGE_IN_USE: 'IMAGE_IN_USE',
  // The registry refused the pull's credentials (or asked for some and none were given).
  REGISTRY_UNAUTHORIZED: 'REGISTRY_UNAUTHORIZED',
  // The registry could not be reached or kept failing (5xx, resets, timeouts) after the retries.
  REGISTRY_UNAVAILABLE: 'REGISTRY_UNAVAILABLE',
  // Ours.
  UNAVAILABLE: 'UNAVAILABLE',
  // The deployment's secret key (env values at rest) is missing, malformed or not the one the data was sealed with.
  SECRET_KEY_INVALID: 'SECRET_KEY_INVALID',
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

/** A package that would unpack past a bound (bytes, members, path length): the bound is named. */
export class PackageTooLargeError extends FaasboxError {
  constructor(message: string, bound: string, limit: number) {
    super(ErrorCode.PAYLOAD_TOO_LARGE, `package: ${message}`, { details: { bound, limit } });
  }
}

export class CodeUnpackFailedError extends FaasboxError {
  constructor(digest: string, reason: string) {
    super(ErrorCode.CODE_UNPACK_FAILED, `the function's code (${digest.slice(0, 12)}) could not be unpacked on the worker: ${reason}; deploy it again`, {
      details: { digest },
    });
  }
}

/** What was named by a digest hashed to something else; nothing of it was kept. */
export class DigestMismatchError extends FaasboxError {
  constructor(what: string, expected: string, actual: string) {
    super(ErrorCode.DIGEST_MISMATCH, `${what}: its sha256 is ${actual}, not the ${expected} it is named by; nothing of it was kept`, { details: { expected, actual } });
  }
}

export class ImageTooLargeError extends FaasboxError {
  constructor(message: string, bound: string, limit: number) {
    super(ErrorCode.IMAGE_TOO_LARGE, message, { details: { bound, limit } });
  }
}

export class ImageInvalidError extends FaasboxError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.IMAGE_INVALID, message, details === undefined ? {} : { details });
  }
}

export class ImageNotFoundError extends FaasboxError {
  constructor(ref: string, hint = '') {
    super(ErrorCode.IMAGE_NOT_FOUND, `image ${JSON.stringify(ref)} is not in the store${hint ? `: ${hint}` : ''}`, { details: { ref } });
  }
}

export class ImageInUseError extends FaasboxError {
  constructor(ref: string, users: string[]) {
    super(ErrorCode.IMAGE_IN_USE, `image ${JSON.stringify(ref)} is in use by ${users.join(', ')}; delete those first, or --force to untag it only (prune removes it once nothing uses it)`, { details: { ref, users } });
  }
}

/** The registry at `registry` refused the pull (401/403 after the auth flow). Never carries a secret. */
export class RegistryUnauthorizedError extends FaasboxError {
  constructor(registry: string, reason: string) {
    super(ErrorCode.REGISTRY_UNAUTHORIZED, `registry ${registry} refused the pull: ${reason}`, { details: { registry } });
  }
}

export class RegistryUnavailableError extends FaasboxError {
  constructor(registry: string, reason: string) {
    super(ErrorCode.REGISTRY_UNAVAILABLE, `registry ${registry} is not available: ${reason}`, { details: { registry } });
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

export class RequestTimeoutError extends FaasboxError {
  constructor(message: string, details?: { headersTimeoutMs: number; requestTimeoutMs: number }) {
    super(ErrorCode.REQUEST_TIMEOUT, message, { details });
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

export class TriggerNotFoundError extends FaasboxError {
  constructor(name: string) {
    super(ErrorCode.TRIGGER_NOT_FOUND, `trigger ${JSON.stringify(name)} does not exist`, { details: { name } });
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

export class ResultTooLargeError extends FaasboxError {
  constructor(limitBytes: number) {
    super(ErrorCode.RESULT_TOO_LARGE, `the function's result is larger than the limit of ${limitBytes} bytes`, { details: { limitBytes } });
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

/** The function's async.maxQueued invocations wait to run already. */
export class DeadLetterNotFoundError extends FaasboxError {
  constructor(fn: string, id: string) {
    super(ErrorCode.DEAD_LETTER_NOT_FOUND, `function ${fn} has no dead letter ${id}`);
  }
}

export class QueuedCountFullError extends FaasboxError {
  constructor(fn: string, maxQueued: number) {
    super(ErrorCode.QUEUE_FULL, `function ${fn} already has ${maxQueued} async invocations waiting to run, its async.maxQueued; retry once some have run`, { details: { maxQueued } });
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

export class WorkerLostError extends FaasboxError {
  constructor(message = 'the worker running the invocation died before it answered; it was not run again: retry') {
    super(ErrorCode.WORKER_LOST, message);
  }
}

export class UnavailableError extends FaasboxError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.UNAVAILABLE, message, { cause });
  }
}

export class SecretKeyError extends FaasboxError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.SECRET_KEY_INVALID, message, { cause });
  }
}

export class InternalError extends FaasboxError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.INTERNAL, message, { cause });
  }
}
