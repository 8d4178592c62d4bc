/**
 * The one place where error codes become HTTP statuses. Every non-2xx body the gateway
 * sends is {"error": {"code", "message", "details"?}}; `code` is the stable discriminator,
 * the status groups codes by who has to act. README.md documents this table.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ErrorCode, FaasboxError, InternalError, PayloadTooLargeError, RouteNotFoundError, StorageFullError } from '../common/errors.js';

export const HTTP_STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  VALIDATION_FAILED: 400,
  INVALID_JSON: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  FUNCTION_NOT_FOUND: 404,
  VERSION_NOT_FOUND: 404,
  INVOCATION_NOT_FOUND: 404,
  TRIGGER_NOT_FOUND: 404,
  DEAD_LETTER_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  CONCURRENCY_LIMIT: 429, // the function's own limit, not the platform's capacity (that is NO_CAPACITY)
  QUEUE_FULL: 429, // the function's own bound on queued async bytes (StorageLimits)
  // The function ran and failed. 5xx because the request itself was acceptable; each
  // outcome has its own status so that proxies and dashboards can tell them apart.
  FUNCTION_ERROR: 502, // the handler threw or rejected: a bad answer from upstream
  RUNTIME_CRASHED: 500, // the runtime process died (exit, signal) without an answer
  // Not 413, which blames the request: the caller's request was fine, the function's
  // answer was not, so a bad gateway, as Lambda-fronting proxies answer an oversized reply.
  RESULT_TOO_LARGE: 502,
  TIMEOUT: 504, // the handler ran past timeoutMs and was killed
  OOM_KILLED: 507, // the function exhausted its memory limit and was killed
  NO_CAPACITY: 503, // no worker started the invocation before its queue deadline
  WORKER_LOST: 503, // the worker running a sync invocation died; sent with Retry-After
  CODE_UNPACK_FAILED: 500, // the deploy accepted the package; unpacking it failed on the worker
  DIGEST_MISMATCH: 502, // the registry served bytes that are not what their digest names
  IMAGE_TOO_LARGE: 422, // the image is past the unpack bounds: the request was fine, the image is not acceptable
  IMAGE_INVALID: 422,
  IMAGE_NOT_FOUND: 404,
  IMAGE_IN_USE: 409, // a live container (or the pools) runs from it
  REGISTRY_UNAUTHORIZED: 403, // the caller's to fix: credentials for the registry (--creds, config.json)
  REGISTRY_UNAVAILABLE: 502, // upstream: the registry kept failing after the retries
  UNAVAILABLE: 503,
  SECRET_KEY_INVALID: 500, // the operator's to fix: the services do not share the key the env was sealed with
  STORAGE_FULL: 503, // Redis at its maxmemory: retry later (Retry-After)
  INTERNAL: 500,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export function errorBody(err: FaasboxError): ErrorBody {
  const body: ErrorBody = { error: { code: err.code, message: err.message } };
  if (err.details !== undefined) body.error.details = err.details;
  return body;
}

/** Normalise anything thrown into a FaasboxError; unknown errors are logged and hidden. */
export function asFaasboxError(err: unknown, c: Context): FaasboxError {
  if (err instanceof FaasboxError) return err;
  if (StorageFullError.matches(err)) return new StorageFullError(err);
  if (err instanceof HTTPException) {
    if (err.status === 413) return new PayloadTooLargeError(-1);
    if (err.status === 404) return new RouteNotFoundError(c.req.method, c.req.path);
  }
  console.error(`[faasbox] gateway: unhandled error on ${c.req.method} ${c.req.path}:`, err);
  return new InternalError('internal error');
}

export function errorResponse(c: Context, err: FaasboxError): Response {
  if (err instanceof StorageFullError) c.header('Retry-After', String(err.retryAfterS));
  return c.json(errorBody(err), HTTP_STATUS[err.code]);
}
