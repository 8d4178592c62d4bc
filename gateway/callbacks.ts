/**
 * Callback URLs as the API accepts them: a `{"url"}` destination in a deploy body's
 * `async` or a trigger body, and an async invoke's X-Callback-Url, checked against the
 * callback host policy (common/delivery/host-policy.ts) before they are stored, so that a
 * URL that can never be sent (not http(s), a literal address in a denied range, a denied
 * hostname) is a 400 naming its field now rather than a failed delivery later. Hostnames
 * are checked again after resolution when the callback is sent.
 */
import type { Destination } from '../common/delivery-spec.js';
import { HostPolicy } from '../common/delivery/host-policy.js';
import { ValidationError } from '../common/errors.js';
import type { GatewayConfig } from './config.js';

export function callbackPolicyOf(config: Pick<GatewayConfig, 'callbackAllow' | 'callbackDeny'>): HostPolicy {
  return new HostPolicy({ allow: config.callbackAllow, deny: config.callbackDeny });
}

const MAX_URL = 2048;

/** Throws VALIDATION_FAILED naming `field` when the policy refuses the URL. */
export function checkCallbackUrl(policy: HostPolicy, url: string, field: string): void {
  const v = url.length > MAX_URL ? { ok: false as const, reason: `at most ${MAX_URL} characters` } : policy.checkUrl(url);
  if (!v.ok) throw new ValidationError(`invalid ${field}: ${v.reason}`, [{ path: field, message: v.reason }]);
}

/** Each `{"url"}` among the destinations, by the path of its field (e.g. "async.onSuccess"). */
export function checkDestinations(policy: HostPolicy, destinations: Record<string, Destination | undefined>): void {
  for (const [field, d] of Object.entries(destinations)) {
    if (d && 'url' in d) checkCallbackUrl(policy, d.url, `${field}.url`);
  }
}
