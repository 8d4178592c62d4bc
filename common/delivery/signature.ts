/**
 * Callback signatures. Each function has its own secret, derived from the deployment's
 * secret key (common/secrets.ts: a keyed digest of "callback:" + the function's name), so
 * that one function's owner cannot forge another's callbacks and nothing extra is stored;
 * rotating the deployment key rotates every callback secret.
 *
 * A callback carries:
 *   X-Faasbox-Timestamp: <unix seconds when it was signed>
 *   X-Faasbox-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
 * The timestamp is in the signed material, so a receiver that refuses a timestamp older
 * than a few minutes (and compares in constant time) cannot be fed a recorded callback
 * again later: a replay with a fresh timestamp no longer matches its signature.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SecretBox } from '../secrets.js';

export const SIGNATURE_HEADER = 'x-faasbox-signature';
export const TIMESTAMP_HEADER = 'x-faasbox-timestamp';
export const INVOCATION_ID_HEADER = 'x-faasbox-invocation-id';

/** The function's callback secret (64 hex digits): what its owner verifies callbacks with. */
export function callbackSecret(box: SecretBox, fn: string): string {
  return box.digest(`callback:${fn}`);
}

/** `sha256=<hex>` over `${timestamp}.${body}`. */
export function signCallback(secret: string, timestamp: number, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

/** The receiver's side, as the docs show it: a signature that matches and a timestamp within `toleranceS`. */
export function verifyCallback(secret: string, headers: { signature?: string; timestamp?: string }, body: string | Buffer, toleranceS = 300, nowS = Math.floor(Date.now() / 1000)): boolean {
  const ts = Number(headers.timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowS - ts) > toleranceS || !headers.signature) return false;
  const want = Buffer.from(signCallback(secret, ts, body));
  const got = Buffer.from(headers.signature);
  return want.length === got.length && timingSafeEqual(want, got);
}
