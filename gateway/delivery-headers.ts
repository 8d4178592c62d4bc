/**
 * What an async invoke's headers ask of its delivery: `Idempotency-Key` (a repeat within
 * 24 h answers the first invocation's id, common/delivery/idempotency.ts), and
 * `X-Callback-Url` (OpenFaaS's: the function's result is POSTed there once the invocation
 * is final, common/delivery/destinations.ts), checked against the callback host policy.
 */
import type { Context } from 'hono';
import type { HostPolicy } from '../common/delivery/host-policy.js';
import { checkCallbackUrl } from './callbacks.js';
import type { DeliveryOptions } from '../common/delivery-spec.js';
import { ValidationError } from '../common/errors.js';
import { MAX_KEY_LENGTH } from '../common/delivery/idempotency.js';

const KEY = /^[\x21-\x7e]+$/;

export function deliveryOfRequest(c: Context, callbacks: HostPolicy): DeliveryOptions | undefined {
  const delivery: DeliveryOptions = {};
  const callbackUrl = c.req.header('x-callback-url');
  if (callbackUrl !== undefined) {
    checkCallbackUrl(callbacks, callbackUrl, 'X-Callback-Url');
    delivery.callbackUrl = callbackUrl;
  }
  const key = c.req.header('idempotency-key');
  if (key !== undefined) {
    if (key.length > MAX_KEY_LENGTH || !KEY.test(key)) {
      throw new ValidationError(`invalid header Idempotency-Key: 1-${MAX_KEY_LENGTH} printable ASCII characters without spaces`, [
        { path: 'Idempotency-Key', message: `1-${MAX_KEY_LENGTH} printable ASCII characters without spaces` },
      ]);
    }
    delivery.idempotencyKey = key;
  }
  return Object.keys(delivery).length ? delivery : undefined;
}
