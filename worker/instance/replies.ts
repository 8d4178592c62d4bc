/**
 * A runtime's reply lines (fd 4), read into the typed messages of images/protocol.ts.
 * The function's own code can write to fd 4 too, so a line is taken for a message only
 * when it has that message's shape; anything else is not a reply (undefined) and is
 * dropped. Error payloads are filled in where a runtime left fields out.
 */
import type { ErrorPayload, HttpResponsePayload, RuntimeMessage } from '../../images/protocol.js';

export function parseReply(line: string): RuntimeMessage | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const m = v as Record<string, unknown>;
  switch (m.type) {
    case 'ready':
      return { type: 'ready', runtime: String(m.runtime ?? ''), pid: Number(m.pid ?? 0), bootMs: Number(m.bootMs ?? 0) };
    case 'loaded':
      return { type: 'loaded', ms: Number(m.ms ?? 0) };
    case 'load-error':
      return { type: 'load-error', error: errorPayload(m.error, 'unknown error') };
    case 'result': {
      if (typeof m.id !== 'string') return undefined;
      // The answer's own shape is checked where it is used (http-answer.ts checkHttpAnswer).
      if (m.ok === true && m.http) return { type: 'result', id: m.id, ok: true, http: m.http as HttpResponsePayload };
      if (m.ok === true) return { type: 'result', id: m.id, ok: true, value: m.value };
      return { type: 'result', id: m.id, ok: false, error: errorPayload(m.error, 'the function failed') };
    }
    default:
      return undefined;
  }
}

function errorPayload(e: unknown, fallback: string): ErrorPayload {
  const o = typeof e === 'object' && e !== null ? (e as Record<string, unknown>) : {};
  return {
    name: typeof o.name === 'string' ? o.name : 'Error',
    message: typeof o.message === 'string' ? o.message : fallback,
    ...(typeof o.stack === 'string' && o.stack ? { stack: o.stack } : {}),
    ...(typeof o.code === 'string' ? { code: o.code } : {}),
  };
}
