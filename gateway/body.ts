/** Reading JSON request bodies with the right 4xx for each way they can be wrong. */
import type { Context } from 'hono';
import { InvalidJsonError, PayloadTooLargeError, RequestTimeoutError, UnsupportedMediaTypeError, ValidationError } from '../common/errors.js';
import { nestsDeeperThan } from './json-depth.js';

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
 * The request body, at most maxBytes. A declared Content-Length is checked before a byte
 * is read (Node's parser never delivers more than it declares), and the body is then read
 * straight off the socket; only a chunked body goes through the Web stream, counted as it
 * arrives. (Hono's bodyLimit middleware always takes the Web stream, which cost the invoke
 * path more than the rest of its request parsing together.)
 */
export async function readBody(c: Context, maxBytes: number): Promise<Buffer> {
  try {
    return await readBodyBytes(c, maxBytes);
  } catch (err) {
    // The socket closed mid-body: the client went away, or the server's request timeout
    // (request-timeouts.ts) answered 408 and closed it. No one is left to answer.
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') throw new RequestTimeoutError('the request body stopped before its end (the client went away, or the request timeout passed)');
    throw err;
  }
}

async function readBodyBytes(c: Context, maxBytes: number): Promise<Buffer> {
  const declared = c.req.header('content-length');
  if (declared !== undefined) {
    if (Number(declared) > maxBytes) throw new PayloadTooLargeError(maxBytes);
    return Buffer.from(await c.req.arrayBuffer());
  }
  const body = c.req.raw.body;
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new PayloadTooLargeError(maxBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

export interface ReadJsonOptions {
  maxBytes: number;
  /** Deepest nesting of arrays and objects accepted (json-depth.ts). */
  maxDepth: number;
  allowEmpty?: boolean;
  emptyValue?: unknown;
}

/**
 * The body as JSON. A body needs a JSON content-type (or none at all); an empty body is
 * `emptyValue` when allowed, else invalid JSON.
 */
export async function readJson(c: Context, options: ReadJsonOptions): Promise<JsonBody> {
  const contentType = c.req.header('content-type');
  const raw = await readBody(c, options.maxBytes);
  if (raw.length === 0 && options.allowEmpty) return { value: options.emptyValue ?? null, raw };
  if (contentType !== undefined && !isJsonContentType(contentType)) throw new UnsupportedMediaTypeError(contentType);
  if (nestsDeeperThan(raw, options.maxDepth)) {
    const message = `nests arrays and objects more than ${options.maxDepth} levels deep, the limit`;
    throw new ValidationError(`request body ${message}`, [{ path: '', message }]);
  }
  try {
    return { value: JSON.parse(raw.toString('utf8')) as unknown, raw };
  } catch (err) {
    throw new InvalidJsonError(err);
  }
}
