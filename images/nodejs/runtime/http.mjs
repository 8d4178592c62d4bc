/**
 * Translations between the protocol's HTTP payloads and Web-standard Request/Response.
 *
 * Request and Response are globals that Node loads lazily (undici) on first touch; this
 * module only touches them when a handler actually needs one, so plain JSON handlers
 * never pay for it. Responses are recognised by shape, not instanceof, for the same
 * reason and so that a Response from a bundled polyfill works too.
 */

const BODYLESS_METHODS = new Set(['GET', 'HEAD']);

/** The Request a fetch-style handler receives: from `http` when present, else the event as a JSON POST. */
export function toRequest(http, event) {
  if (!http) {
    return new Request('http://localhost/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event ?? null),
    });
  }
  const method = String(http.method || 'GET').toUpperCase();
  const headers = new Headers();
  for (const [name, value] of Object.entries(http.headers ?? {})) {
    // Framing belongs to the original connection; the body here is already complete.
    if (name.toLowerCase() === 'content-length' || name.toLowerCase() === 'transfer-encoding') continue;
    headers.append(name, String(value));
  }
  const init = { method, headers };
  // A Buffer when the body came raw (bodyBytes), else base64.
  if (!BODYLESS_METHODS.has(method) && http.body && http.body.length > 0) init.body = Buffer.isBuffer(http.body) ? http.body : Buffer.from(http.body, 'base64');
  return new Request(requestUrl(http), init);
}

function requestUrl(http) {
  let target = http.url;
  if (target === undefined) {
    target = http.path || '/';
    const q = http.query;
    if (typeof q === 'string' && q !== '') target += `?${q.replace(/^\?/, '')}`;
    else if (q && typeof q === 'object') {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) for (const one of Array.isArray(v) ? v : [v]) params.append(k, String(one));
      const s = params.toString();
      if (s) target += `?${s}`;
    }
  }
  if (!target.startsWith('/')) target = `/${target}`;
  const host = http.headers?.host ?? http.headers?.Host;
  if (host) {
    try {
      return new URL(target, `http://${host}`).href;
    } catch {
      // A Host header that is not a valid authority: fall back to localhost.
    }
  }
  return new URL(target, 'http://localhost').href;
}

export function isResponseLike(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.status === 'number' &&
    typeof value.arrayBuffer === 'function' &&
    value.headers !== null &&
    typeof value.headers === 'object' &&
    typeof value.headers.forEach === 'function'
  );
}

export async function fromResponse(res) {
  const headers = {};
  res.headers.forEach((value, name) => addHeader(headers, name, value));
  const body = Buffer.from(await res.arrayBuffer()).toString('base64');
  return { status: res.status, headers, body };
}

const PROXY_KEYS = new Set(['statusCode', 'headers', 'multiValueHeaders', 'body', 'isBase64Encoded', 'cookies']);

/** An API-Gateway-proxy-style result: `{statusCode, headers?, body?, isBase64Encoded?}` and nothing else. */
export function isProxyResult(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  if (!Number.isInteger(value.statusCode) || value.statusCode < 100 || value.statusCode > 599) return false;
  return Object.keys(value).every((k) => PROXY_KEYS.has(k));
}

export function fromProxyResult(value) {
  const headers = {};
  for (const [name, v] of Object.entries(value.headers ?? {})) addHeader(headers, name, String(v));
  for (const [name, vs] of Object.entries(value.multiValueHeaders ?? {})) {
    for (const v of Array.isArray(vs) ? vs : [vs]) addHeader(headers, name, String(v));
  }
  for (const c of value.cookies ?? []) addHeader(headers, 'set-cookie', String(c));
  let body = '';
  if (typeof value.body === 'string') {
    body = value.isBase64Encoded ? value.body : Buffer.from(value.body, 'utf8').toString('base64');
  } else if (value.body !== undefined && value.body !== null) {
    // Lenient: Lambda wants a string, but an object body clearly means JSON.
    body = Buffer.from(JSON.stringify(value.body), 'utf8').toString('base64');
    if (!('content-type' in headers)) headers['content-type'] = 'application/json';
  }
  return { status: value.statusCode, headers, body };
}

function addHeader(headers, name, value) {
  const key = name.toLowerCase();
  headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
}
