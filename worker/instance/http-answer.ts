/**
 * A function's HTTP-style answer (a Response, a Lambda-proxy object: images/PROTOCOL.md),
 * judged once, where the worker receives it. What passes can be sent as an HTTP response
 * as is; what does not is the function's error (FUNCTION_ERROR, naming the header or the
 * status), never a 500 of ours later on: an invalid header value made the gateway's
 * Headers throw (500 INTERNAL), a 200 KB one broke the reply after its status had gone
 * out (200 with an error body), and status 101 passed through.
 */
import type { HttpResponseData } from '../../common/queue.js';

/** HTTP's token (RFC 9110 5.6.2): what a field name may be made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII, space and tab (RFC 9110 5.5), no CR, LF or NUL; obs-text (non-ASCII) is refused. */
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;
/**
 * The function's header section, counted as on the wire ("name: value\r\n"). Node's HTTP
 * clients refuse a response whose headers pass 16 KiB (--max-http-header-size) and
 * common proxies hold 4-8 KiB (nginx's proxy_buffer_size); 8 KiB leaves the platform's
 * own headers room under the first and fits the second.
 */
export const MAX_HEADER_BYTES = 8 * 1024;

export class MalformedHttpAnswer extends Error {
  constructor(problem: string) {
    super(`the function's HTTP response is malformed: ${problem}`);
    this.name = 'MalformedHttpAnswerError';
  }
}

/** The answer as response data, or MalformedHttpAnswer saying what is wrong with it. */
export function checkHttpAnswer(http: unknown): HttpResponseData | MalformedHttpAnswer {
  if (http === null || typeof http !== 'object') return new MalformedHttpAnswer('it is not an object');
  const { status, headers, body } = http as Record<string, unknown>;
  // 1xx are interim responses (101 would switch protocols on the caller's connection);
  // a final answer is 200-599.
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    return new MalformedHttpAnswer(`status ${JSON.stringify(status)} is not a final HTTP status (200-599)`);
  }
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return new MalformedHttpAnswer('its headers are not an object');
  let bytes = 0;
  const checked: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}...` : name);
    if (!TOKEN.test(name)) return new MalformedHttpAnswer(`header name ${shown} is not a valid HTTP field name`);
    if (typeof value !== 'string') return new MalformedHttpAnswer(`header ${shown} has a value that is not a string`);
    if (!FIELD_VALUE.test(value)) {
      const what = /[\r\n]/.test(value) ? 'a CR or LF' : /[^\x00-\x7f]/.test(value) ? 'a non-ASCII character' : 'a control character';
      return new MalformedHttpAnswer(`header ${shown} has ${what} in its value`);
    }
    bytes += name.length + value.length + 4;
    if (bytes > MAX_HEADER_BYTES) return new MalformedHttpAnswer(`its headers exceed ${MAX_HEADER_BYTES} bytes (at header ${shown})`);
    checked[name] = value;
  }
  if (typeof body !== 'string') return new MalformedHttpAnswer('its body is not a base64 string');
  return { status, headers: checked, body };
}
