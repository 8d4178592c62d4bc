/**
 * Finding the handler in a function's module and running it in the right style.
 *
 * Styles:
 *   plain  - a function: handler(event, context) -> value (a Response or proxy-style
 *            object is still turned into an HTTP reply);
 *   fetch  - an object with fetch(request, env, context) (Hono apps, Workers-style
 *            modules), or an export named "fetch": it gets a real Request.
 */
import { toRequest, isResponseLike, fromResponse, isProxyResult, fromProxyResult } from './http.mjs';

export class HandlerNotFoundError extends Error {
  constructor(message) {
    super(message);
    this.name = 'HandlerNotFoundError';
    this.code = 'HANDLER_NOT_FOUND';
  }
}

/** Picks the export `name` from an imported module namespace; throws HandlerNotFoundError. */
export function pickHandler(mod, name, entry) {
  // Own exports only: looked up through the prototype chain, "constructor" (or
  // "toString", "__proto__") named Object's or Function's and ran that as the handler.
  let value = ownExport(mod, name);
  // CJS `module.exports = { handler }` arrives as the default export, not always as a named one.
  if (value === undefined && isObject(mod.default)) value = ownExport(mod.default, name);
  // CJS compiled from ESM (`exports.__esModule`, `exports.default = fn`): the real default is one level down.
  if (name === 'default' && typeof value === 'object' && value !== null && typeof value.fetch !== 'function' && ownExport(value, 'default') !== undefined) {
    value = value.default;
  }
  if (typeof value === 'function') return { style: name === 'fetch' ? 'fetch' : 'plain', target: value };
  if (isObject(value) && typeof value.fetch === 'function') return { style: 'fetch', target: value };
  const exports = Object.keys(mod).filter((k) => k !== '__esModule').join(', ') || 'none';
  const what = value === undefined ? 'has no export' : `export is not a function or an object with fetch()`;
  throw new HandlerNotFoundError(`${entry} ${what} "${name}" (exports: ${exports})`);
}

/**
 * Runs one invocation and returns the reply's payload: `{ value }` or `{ http }`.
 * Throws whatever the handler throws.
 */
export async function runHandler(handler, event, context, http, env) {
  let result;
  if (handler.style === 'fetch') {
    const request = toRequest(http, event);
    result =
      typeof handler.target === 'function'
        ? await handler.target(request, env, context)
        : await handler.target.fetch(request, env, context);
  } else {
    result = await handler.target(event, context);
  }
  if (isResponseLike(result)) return { http: await fromResponse(result) };
  if (isProxyResult(result)) return { http: fromProxyResult(result) };
  return { value: result === undefined ? null : result };
}

/** The context object handlers receive: the worker's fields plus helpers. */
export function makeContext(id, payload, http, event) {
  const c = payload ?? {};
  const deadline = Number.isFinite(c.deadline) ? c.deadline : Number.POSITIVE_INFINITY;
  const context = {
    invocationId: c.invocationId ?? id,
    functionName: c.functionName,
    functionVersion: c.functionVersion,
    memoryLimitMb: c.memoryLimitMb,
    deadline,
    // At-least-once delivery: 1 on the first try, more after a failure or a crash.
    attempt: Number.isInteger(c.attempt) ? c.attempt : 1,
    idempotencyKey: typeof c.idempotencyKey === 'string' ? c.idempotencyKey : undefined,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  // A plain handler may still want the Request; built on first use only, since it costs.
  let request;
  Object.defineProperty(context, 'request', {
    enumerable: false,
    get: () => (request ??= toRequest(http, event)),
  });
  return context;
}

export function serializeError(err) {
  if (isObject(err) && 'message' in err) {
    const out = { name: String(err.name ?? 'Error'), message: String(err.message) };
    if (typeof err.stack === 'string') out.stack = err.stack;
    if (typeof err.code === 'string') out.code = err.code;
    return out;
  }
  let message;
  try {
    message = typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err));
  } catch {
    message = String(err);
  }
  return { name: 'Error', message };
}

function ownExport(obj, name) {
  return Object.hasOwn(obj, name) ? obj[name] : undefined;
}

function isObject(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function');
}
