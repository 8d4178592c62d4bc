/**
 * The worker <-> runtime protocol, as types. The prose version, with the reasons, is
 * images/PROTOCOL.md; the runtime side is images/nodejs/runtime/runtime.cjs for Node.js
 * (plain JavaScript) and images/python3/runtime/runtime.py for Python: both run inside
 * the container.
 *
 *   worker                                   runtime (in the container)
 *     |                                          |  boots
 *     |  <-- fd 4 -- {"type":"ready"}  ----------|
 *     |  --- fd 3 -> {"type":"load"}   --------->|  imports the function's module
 *     |  <-- fd 4 -- loaded | load-error --------|
 *     |  --- fd 3 -> {"type":"invoke","id"} ---->|  runs the handler
 *     |  <-- fd 1 -- ...function output... MARK  |
 *     |  <-- fd 2 -- ...function output... MARK  |
 *     |  <-- fd 4 -- {"type":"result","id"} -----|
 *     |  ... more invokes, one at a time ...     |
 *     |  closes fd 3 ----------------------------|  exits 0
 *
 * Messages are JSON, one per line ("\n"-terminated), never split across lines; an invoke
 * with bodyBytes is followed by that many raw bytes (its body) before the next line.
 */

/** fd numbers inside the container. */
export const REQUEST_FD = 3;
export const REPLY_FD = 4;

/**
 * Written to both stdout and stderr right before each result, as `${END_MARKER}${id}\n`,
 * after everything the function wrote to that stream. The record separator (U+001E)
 * makes an accidental match by a function's own output implausible.
 */
export const END_MARKER = '\u001eFAASBOX-END ';
/**
 * Set to "0" in a runtime's environment when its first request follows at once (a cold
 * start): the Node.js shim then skips its warm-up before "ready" (PROTOCOL.md, "Boot").
 * Shims remove it from the environment functions see.
 */
export const WARM_UP_ENV = 'FAASBOX_WARM_UP';

export function endMarker(invocationId: string): string {
  return `${END_MARKER}${invocationId}\n`;
}

/** In-container paths of the Node.js image. */
export const NODE_BINARY = '/usr/bin/node';
export const NODE_RUNTIME_ENTRY = '/opt/faasbox/runtime/runtime.cjs';
export const CODE_DIR = '/var/task';

/** In-container paths of the Python image. */
export const PYTHON_BINARY = '/usr/bin/python3';
export const PYTHON_RUNTIME_ENTRY = '/opt/faasbox/runtime/runtime.py';
/**
 * -I: isolated (no PYTHON* variables, no script or user dirs on sys.path); -S: no `site`
 * import (its path scans are most of a bare start, and the image has no site-packages);
 * -B: never write .pyc (the layers are read-only; the image ships the stdlib's);
 * -u: unbuffered stdout/stderr, so output reaches the pipe before the end marker;
 * -X utf8: UTF-8 stdio and files whatever the (absent) locale says.
 */
export const PYTHON_FLAGS = ['-I', '-S', '-B', '-u', '-X', 'utf8'] as const;

/** The command that starts each runtime image's shim (flags: see PROTOCOL.md "Boot"). */
export const RUNTIME_COMMAND = {
  nodejs20: [NODE_BINARY, NODE_RUNTIME_ENTRY],
  python3: [PYTHON_BINARY, ...PYTHON_FLAGS, PYTHON_RUNTIME_ENTRY],
} as const satisfies Record<string, readonly string[]>;

export type RuntimeName = keyof typeof RUNTIME_COMMAND;

/** A serialised JavaScript error. */
export interface ErrorPayload {
  name: string;
  message: string;
  stack?: string;
  /** The error's own `code`, when it had a string one (e.g. ERR_MODULE_NOT_FOUND). */
  code?: string;
}

// ---- runtime -> worker (fd 4) ----

export interface ReadyMessage {
  type: 'ready';
  runtime: string;
  pid: number;
  /** Milliseconds from the process's start to this message, as the runtime measured it. */
  bootMs: number;
}

export interface LoadedMessage {
  type: 'loaded';
  /** Time spent importing the module and picking the handler. */
  ms: number;
}

export interface LoadErrorMessage {
  type: 'load-error';
  error: ErrorPayload;
}

export interface HttpResponsePayload {
  status: number;
  /** Lower-case names. Several Set-Cookie values are joined with ", ". */
  headers: Record<string, string>;
  /** base64 of the body; "" for none. */
  body: string;
}

export type ResultMessage =
  | { type: 'result'; id: string; ok: true; value: unknown }
  | { type: 'result'; id: string; ok: true; http: HttpResponsePayload }
  | { type: 'result'; id: string; ok: false; error: ErrorPayload };

export type RuntimeMessage = ReadyMessage | LoadedMessage | LoadErrorMessage | ResultMessage;

// ---- worker -> runtime (fd 3) ----

export interface LoadMessage {
  type: 'load';
  /** Absolute directory of the function's code inside the container (normally /var/task). */
  codeDir: string;
  /** Module file relative to codeDir: .mjs, .cjs, or .js (package.json "type" decides); .py for Python. */
  entry: string;
  /** Export name of the handler; "default" when omitted (Python: "handler", which "default" also means there). */
  handler?: string;
  /** Merged into process.env (os.environ) before the module is imported. */
  env?: Record<string, string>;
}

export interface HttpRequestPayload {
  method: string;
  /** Path and query as the client sent them ("/a/b?x=1"). Takes precedence over path+query. */
  url?: string;
  path?: string;
  /** Without the "?", or as an object of values. */
  query?: string | Record<string, string | string[]>;
  headers: Record<string, string>;
  /** base64 of the body; "" or absent for none. */
  body?: string;
}

export interface InvokeContextPayload {
  invocationId: string;
  functionName: string;
  functionVersion: string;
  memoryLimitMb: number;
  /** Epoch ms by which the worker kills the invocation. */
  deadline: number;
  /** 1-based: async invocations are delivered at least once, and may run again after a failure or a crash. */
  attempt?: number;
  /** The caller's Idempotency-Key, or a trigger's job id, when there was one. */
  idempotencyKey?: string;
}

export interface InvokeMessage {
  type: 'invoke';
  id: string;
  event: unknown;
  context: InvokeContextPayload;
  /** Present when an HTTP request caused the invocation (Web-standard handlers get it as a Request). */
  http?: HttpRequestPayload;
  /**
   * When present, exactly this many bytes follow the line on fd 3: the request's raw body,
   * sent once and unencoded. The line then has no `event` and no `http.body`: the event is
   * the body's JSON (null for 0 bytes), and the Request or context.http reads the bytes.
   */
  bodyBytes?: number;
}

export type WorkerMessage = LoadMessage | InvokeMessage;
