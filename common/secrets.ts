/**
 * Function env values are secrets (Lambda encrypts them at rest too): what the registry
 * writes to Redis holds them only sealed, AES-256-GCM under the deployment's 32-byte key,
 * a fresh random 96-bit IV per seal, the function's name as associated data (so a sealed
 * environment copied onto another function does not open). GCM's tag is checked on every
 * open: a wrong key or altered bytes are a SecretKeyError, never garbage.
 *
 * Sealed form: "gcm1:" + base64(iv[12] | tag[16] | ciphertext).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { SecretKeyError } from './errors.js';

const PREFIX = 'gcm1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const SECRET_KEY_BYTES = 32;

/**
 * A key as FAASBOX_SECRET_KEY or the key file gives it: 64 hex digits, or base64 (or
 * base64url) of 32 bytes. Anything else is refused, naming where it came from.
 */
export function parseSecretKey(text: string, source: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : /^[A-Za-z0-9+/_-]+={0,2}$/.test(t) ? Buffer.from(t, 'base64') : Buffer.alloc(0);
  if (key.length !== SECRET_KEY_BYTES) {
    throw new SecretKeyError(`${source} is not a ${SECRET_KEY_BYTES}-byte key: give 64 hex digits or the base64 of ${SECRET_KEY_BYTES} bytes (openssl rand -base64 32)`);
  }
  return key;
}

export class SecretBox {
  private readonly key: Buffer;
  /** For digests, derived from the key (never the cipher's key itself). */
  private readonly macKey: Buffer;

  constructor(key: Buffer) {
    if (key.length !== SECRET_KEY_BYTES) throw new SecretKeyError(`a secret key has ${SECRET_KEY_BYTES} bytes, not ${key.length}`);
    this.key = Buffer.from(key);
    this.macKey = Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), 'faasbox secret digest', 32));
  }

  /** A keyed digest (HMAC-SHA256, hex): equal inputs give equal digests, which say nothing about the input without the key. */
  digest(data: string): string {
    return createHmac('sha256', this.macKey).update(data).digest('hex');
  }

  static generateKey(): Buffer {
    return randomBytes(SECRET_KEY_BYTES);
  }

  static isSealed(value: unknown): value is string {
    return typeof value === 'string' && value.startsWith(PREFIX);
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64');
  }

  /** The plaintext; SecretKeyError when the key is not the one that sealed it, or the bytes were altered. */
  open(sealed: string, context: string): string {
    const raw = SecretBox.isSealed(sealed) ? Buffer.from(sealed.slice(PREFIX.length), 'base64') : Buffer.alloc(0);
    if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretKeyError(`the sealed value for ${context} is malformed`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new SecretKeyError(`cannot decrypt the stored secrets of ${context}: the secret key (FAASBOX_SECRET_KEY or the state dir's secret-key) is not the one they were stored with`, err);
    }
  }
}
