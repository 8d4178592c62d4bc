/**
 * Who may read /metrics: its series name every function, deleted ones included until
 * they are forgotten, while the API takes care that names cannot be probed without a
 * key. So a scrape needs a bearer token (the metrics token, or the management key) unless
 * the operator opts out explicitly (metricsPublic). Used by the gateway and by a
 * standalone worker's metrics server. Tokens are compared as sha256 digests with
 * timingSafeEqual, as auth.ts compares keys.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ForbiddenError, UnauthorizedError } from '../common/errors.js';

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class MetricsGuard {
  private readonly digests: Buffer[];

  /** tokens: the ones accepted (empty ones ignored); none accepted and not public refuses every scrape. */
  constructor(
    tokens: (string | undefined)[],
    readonly isPublic = false,
  ) {
    this.digests = tokens.filter((t): t is string => !!t).map(digest);
  }

  get hasTokens(): boolean {
    return this.digests.length > 0;
  }

  /** Throws 401 without a token (or a malformed header), 403 with a wrong one. */
  check(authorization: string | undefined): void {
    if (this.isPublic) return;
    if (authorization === undefined) throw new UnauthorizedError('metrics need a token: send Authorization: Bearer <metrics token or API key>');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new UnauthorizedError('malformed Authorization header: expected "Bearer <token>"');
    const d = digest(match[1] as string);
    if (!this.digests.some((ok) => timingSafeEqual(d, ok))) throw new ForbiddenError('token is not valid for /metrics');
  }
}
