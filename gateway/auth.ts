/**
 * API keys. Management calls need the deployment's key; invoking a function (and reading
 * its invocations) needs nothing when the function is public, else the management key or
 * one of the function's own invoke keys. Keys are compared as sha256 digests with
 * timingSafeEqual, so comparison time says nothing about the key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { ForbiddenError, UnauthorizedError } from '../common/errors.js';
import type { FunctionSpec } from '../common/function-spec.js';

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** The bearer token, undefined when no Authorization header; 401 when it is malformed. */
export function bearerToken(c: Context): string | undefined {
  const header = c.req.header('authorization');
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new UnauthorizedError('malformed Authorization header: expected "Bearer <key>"');
  return match[1];
}

export class KeyChecker {
  private readonly managementDigest: Buffer;

  constructor(managementKey: string) {
    this.managementDigest = digest(managementKey);
  }

  isManagementKey(key: string | undefined): boolean {
    return key !== undefined && timingSafeEqual(digest(key), this.managementDigest);
  }

  /** Throws 401 without a key, 403 with a wrong one. */
  requireManagement(c: Context): void {
    const key = bearerToken(c);
    if (key === undefined) throw new UnauthorizedError();
    if (!this.isManagementKey(key)) throw new ForbiddenError('API key is not the management key');
  }

  middleware(): MiddlewareHandler {
    return async (c, next) => {
      this.requireManagement(c);
      await next();
    };
  }

  /**
   * May the caller invoke this function? `spec` undefined means it does not exist; then only
   * the management key may learn that (404), others get 401/403 as if it existed, so
   * function names cannot be probed without a key.
   */
  requireInvoke(c: Context, spec: Pick<FunctionSpec, 'public' | 'invokeKeyDigests'> | undefined): void {
    if (spec?.public) return;
    const key = bearerToken(c);
    if (key === undefined) throw new UnauthorizedError();
    if (this.isManagementKey(key)) return;
    if (spec) {
      const d = digest(key);
      for (const hex of spec.invokeKeyDigests) {
        if (timingSafeEqual(d, Buffer.from(hex, 'hex'))) return;
      }
    }
    throw new ForbiddenError('API key may not invoke this function');
  }
}
