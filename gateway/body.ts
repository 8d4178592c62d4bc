/** Reading JSON request bodies with the right 4xx for each way they can be wrong. */
import type { Context } from 'hono';
import { InvalidJsonError, UnsupportedMediaTypeError } from '../common/errors.js';

export function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mime = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  return mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json'));
}

export interface JsonBody {
  value: unknown;
  raw: Buffer;
}

/**
 * The body as JSON. A body needs a JSON content-type (or none at all); an empty body is
 * `emptyValue` when allowed, else invalid JSON.
 */
export async function readJson(c: Context, options: { allowEmpty?: boolean; emptyValue?: unknown } = {}): Promise<JsonBody> {
  const contentType = c.req.header('content-type');
  const raw = Buffer.from(await c.req.arrayBuffer());
  if (raw.length === 0 && options.allowEmpty) return { value: options.emptyValue ?? null, raw };
  if (contentType !== undefined && !isJsonContentType(contentType)) throw new UnsupportedMediaTypeError(contentType);
  try {
    return { value: JSON.parse(raw.toString('utf8')) as unknown, raw };
  } catch (err) {
    throw new InvalidJsonError(err);
  }
}
