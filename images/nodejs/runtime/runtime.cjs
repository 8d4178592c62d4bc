/**
 * faasbox Node.js runtime shim: boots, says "ready", then serves the worker over two
 * inherited fds (3: requests in, 4: replies out; JSON lines). The protocol is
 * images/PROTOCOL.md; its types are images/protocol.ts.
 *
 * Runs inside the container with no dependencies and no network. Boot time is the stem
 * cell's cost, so before "ready" it loads only what every function needs, plus one quiet
 * warm-up run of the request paths (warmUp(), at the end), which a specialisation would
 * otherwise pay for.
 */
'use strict';
// CommonJS on purpose: an ESM entry and ESM imports of built-ins cost Node ~7 ms more at
// boot than this (measured on the host: node empty.mjs 31.0 ms, empty.cjs 26.9 ms; the
// three built-ins below 4.7 ms by import, 1.2 ms by require). The ESM loader, which the
// function's module needs, comes up with the handler library before "ready" (see the end).
const net = require('node:net');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

/** Handler logic: ESM, so importing it also brings up the ESM loader the function's module needs. */
let handlerModule;
const lib = () => (handlerModule ??= loadModule(path.join(__dirname, 'handler.mjs')));

const END_MARKER = '\u001eFAASBOX-END ';
const REQUEST_FD = 3;
const REPLY_FD = 4;

const replies = new net.Socket({ fd: REPLY_FD, readable: false, writable: true });
// The worker is gone: nobody will ever read a result again.
replies.on('error', () => process.exit(0));

function send(line) {
  replies.write(`${line}\n`);
}

/** Where an operation's reply and end markers go: to the worker, or nowhere (the warm-up). */
const wire = { send, markers: writeMarkers };

/** The operation (load or invoke) that an uncaught error belongs to, if any. */
let active;
let handler;
/** The env the worker gave at load; fetch-style handlers get it as their second argument. */
const functionEnv = {};
/**
 * The stdio streams' original write methods, taken before any function code runs, so a
 * function that patches process.stdout.write cannot swallow the end markers.
 */
let stdio;

function captureStdio() {
  stdio ??= [process.stdout, process.stderr].map((stream) => ({ stream, write: stream.write }));
}

function onUncaught(err) {
  if (active) {
    active.fail(err);
    return;
  }
  // Outside any invocation (a timer left by an earlier one): report, keep serving.
  try {
    process.stderr.write(`faasbox-runtime: uncaught error outside an invocation: ${err?.stack ?? String(err)}\n`);
  } catch {
    // stderr is gone too; nothing left to tell.
  }
}
process.on('uncaughtException', onUncaught);
process.on('unhandledRejection', onUncaught);

/**
 * Runs `work` as the active operation; an uncaught exception or unhandled rejection
 * while it runs fails it. Resolves to { ok: true, value } or { ok: false, error }.
 */
async function asOperation(work) {
  let failure;
  let outcome;
  let settle;
  const done = new Promise((resolve) => (settle = resolve));
  // Bound to this operation: a handler that settles after its invocation was already
  // failed must not touch the next one.
  const op = {
    fail(err) {
      failure ??= { error: err };
      settle();
    },
  };
  active = op;
  work().then(
    (value) => {
      outcome = value;
      settle();
    },
    (err) => op.fail(err),
  );
  await done;
  // A promise the handler dropped is reported as unhandled only after the microtask queue
  // drains; one macrotask later it has been, so it still counts against this operation.
  await new Promise((resolve) => setImmediate(resolve));
  active = undefined;
  return failure ? { ok: false, error: failure.error } : { ok: true, value: outcome };
}

/**
 * The function's module, as import() would give it. Loaded synchronously where Node can
 * (require of ES modules, Node >= 20.19): a tiny module took 0.2 ms that way against
 * 0.85 ms by import(), whose file reads each take a trip through libuv's thread pool.
 * A module graph with top-level await, or a Node without require(esm), is imported
 * (Node refuses both before evaluating anything, so nothing runs twice).
 */
async function loadModule(file) {
  let exported;
  try {
    exported = require(file);
  } catch (err) {
    if (err?.code === 'ERR_REQUIRE_ESM' || err?.code === 'ERR_REQUIRE_ASYNC_MODULE') return import(pathToFileURL(file).href);
    // The entry itself is missing: import() says so without naming this shim as the requirer.
    if (err?.code === 'MODULE_NOT_FOUND' && err.requireStack?.length === 1 && err.requireStack[0] === __filename) return import(pathToFileURL(file).href);
    throw err;
  }
  if (exported !== null && typeof exported === 'object' && exported[Symbol.toStringTag] === 'Module') return exported;
  // CommonJS: module.exports is the default export, its properties the named ones.
  const ns = exported !== null && (typeof exported === 'object' || typeof exported === 'function') ? { ...exported } : {};
  ns.default = exported;
  return ns;
}

async function load(msg, io) {
  const started = performance.now();
  const { pickHandler, serializeError } = await lib();
  captureStdio();
  const codeDir = msg.codeDir || '/var/task';
  const entry = String(msg.entry ?? '');
  const name = msg.handler || 'default';
  const r = await asOperation(async () => {
    for (const [k, v] of Object.entries(msg.env ?? {})) {
      process.env[k] = String(v);
      functionEnv[k] = String(v);
    }
    // Functions commonly read files beside their code by relative path.
    try {
      process.chdir(codeDir);
    } catch {
      // codeDir missing: the import below fails with the precise error.
    }
    const mod = await loadModule(path.resolve(codeDir, entry));
    const picked = pickHandler(mod, name, entry);
    // A fetch-style function needs Request/Response, which Node loads lazily and slowly:
    // pay that here rather than on the first invocation.
    if (picked.style === 'fetch') void [globalThis.Request, globalThis.Response];
    return picked;
  });
  if (!r.ok) {
    io.send(JSON.stringify({ type: 'load-error', error: serializeError(r.error) }));
    return;
  }
  handler = r.value;
  io.send(JSON.stringify({ type: 'loaded', ms: performance.now() - started }));
}

async function invoke(msg, io, body) {
  const id = String(msg.id);
  const { runHandler, makeContext, serializeError } = await lib();
  let r;
  if (!handler) {
    r = { ok: false, error: Object.assign(new Error('no function is loaded'), { name: 'NotLoadedError' }) };
  } else {
    let event = msg.event;
    let http = msg.http;
    if (body) {
      // The body came once, raw, behind the line (bodyBytes): the event is its JSON, and a
      // Request reads the same bytes. Its text is garbage once parsed; only the event and
      // the bytes stay (a 5 MB event used to be held as the line, the event and base64).
      await makeRoomFor(body.length, msg.context?.memoryLimitMb);
      try {
        event = body.length === 0 ? null : JSON.parse(body.toString('utf8'));
      } catch (err) {
        event = undefined;
        r = { ok: false, error: new SyntaxError(`the invocation's body is not JSON: ${err.message}`) };
      }
      http = { ...(http ?? { method: 'POST', url: '/', headers: {} }), body };
    }
    if (!r) {
      const context = makeContext(id, msg.context, http, event);
      r = await asOperation(() => runHandler(handler, event, context, http, { ...functionEnv }));
    }
  }
  let line;
  if (r.ok) {
    try {
      line = JSON.stringify({ type: 'result', id, ok: true, ...r.value });
    } catch (err) {
      r = { ok: false, error: new TypeError(`the handler's result is not JSON-serialisable: ${err.message}`) };
    }
  }
  if (!r.ok) line = JSON.stringify({ type: 'result', id, ok: false, error: serializeError(r.error) });
  await io.markers(id);
  io.send(line);
}

/** Bodies from this size on may need room made for them (makeRoomFor). */
const LARGE_BODY_BYTES = 1024 * 1024;

/**
 * Collects garbage before a large body is parsed, when the heap and buffers, plus about
 * three times the body (its text, the event, and what the function makes of it), would
 * pass half of the function's memory. V8 sizes its heap by the host's memory (4.3 GB
 * here), not the container's, which it cannot see: each 5 MB event left 15 MB of garbage
 * that no GC came for, and the tenth call of a 128 MB no-op function was OOM-killed
 * (cgroup peaks 28, 43, 58 ... 128 MB). A V8 flag (--max-old-space-size) would size it,
 * but any flag makes Node reject its built-in code cache (boot slower, see PROTOCOL.md),
 * and a stem cell's memory limit is known only when it is specialised.
 */
async function makeRoomFor(bytes, memoryLimitMb) {
  if (bytes < LARGE_BODY_BYTES || !(memoryLimitMb > 0)) return;
  const { heapTotal, external } = process.memoryUsage();
  if (heapTotal + external + 3 * bytes < (memoryLimitMb * 1024 * 1024) / 2) return;
  try {
    // A full GC without a V8 flag: the inspector protocol's, over an in-process session.
    const session = new (require('node:inspector').Session)();
    session.connect();
    await new Promise((resolve) => session.post('HeapProfiler.collectGarbage', resolve));
    session.disconnect();
  } catch {
    // A Node without the inspector: the event is delivered all the same.
  }
}

/** Writes the end marker to stdout and stderr and waits until both (and all before them) are flushed. */
function writeMarkers(id) {
  captureStdio();
  const marker = `${END_MARKER}${id}\n`;
  return Promise.all(
    stdio.map(
      ({ stream, write }) =>
        new Promise((resolve) => {
          try {
            write.call(stream, marker, () => resolve());
          } catch {
            resolve();
          }
        }),
    ),
  );
}

async function dispatch(msg, io = wire, body) {
  if (msg?.type === 'load') return load(msg, io);
  if (msg?.type === 'invoke') return invoke(msg, io, body);
  process.stderr.write(`faasbox-runtime: ignoring unknown request type ${JSON.stringify(msg?.type)}\n`);
}

// Requests are served strictly one after another, in arrival order.
let queue = Promise.resolve();
/** Where replies go while the boot's warm-up runs (warmUp()): nowhere. */
let warmIo;
/** Pieces of the request line being read (Buffers, views of the chunks read). */
let partial = [];
/** The raw body being read behind an invoke line with bodyBytes: { msg, bytes, filled }. */
let pendingBody;
const requests = new net.Socket({ fd: REQUEST_FD, readable: true, writable: false });
requests.on('data', (chunk) => {
  // Only the new chunk is searched, so a multi-megabyte event costs linear time; a body
  // is copied once, into a buffer of its announced size.
  let start = 0;
  while (start < chunk.length) {
    if (pendingBody) {
      const n = chunk.copy(pendingBody.bytes, pendingBody.filled, start);
      pendingBody.filled += n;
      start += n;
      if (pendingBody.filled === pendingBody.bytes.length) {
        const { msg, bytes } = pendingBody;
        pendingBody = undefined;
        enqueue(msg, bytes);
      }
      continue;
    }
    const nl = chunk.indexOf(0x0a, start);
    if (nl < 0) {
      partial.push(chunk.subarray(start));
      break;
    }
    partial.push(chunk.subarray(start, nl));
    const line = partial.length === 1 ? partial[0].toString('utf8') : Buffer.concat(partial).toString('utf8');
    partial = [];
    start = nl + 1;
    if (line.trim() === '') continue;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      // Said in its turn, after the requests before it, like any other answer.
      const head = line.slice(0, 200);
      queue = queue.then(() => void process.stderr.write(`faasbox-runtime: ignoring a request that is not JSON: ${head}\n`));
      continue;
    }
    const size = msg?.type === 'invoke' ? msg.bodyBytes : undefined;
    if (Number.isSafeInteger(size) && size > 0) pendingBody = { msg, bytes: Buffer.allocUnsafe(size), filled: 0 };
    else enqueue(msg, size === 0 ? Buffer.alloc(0) : undefined);
  }
});

function enqueue(msg, body) {
  const io = warmIo ?? wire;
  queue = queue.then(() => dispatch(msg, io, body));
}
// The worker closed our request fd: it is done with us.
requests.on('end', () => process.exit(0));
requests.on('error', () => process.exit(0));

// "ready" waits for the handler library, and with it the ESM loader (~6 ms of CPU in a
// fresh process), to come up. The runtime boots at the boot CPU share, but a function's
// own quota is set before its code is loaded: on a cold start, that first import at
// 0.072 cores ran into the CFS throttle (load 11.7 ms median, up to a period's 100 ms).
// The worker says "0" when the first request follows at once (a cold start): run right
// before it, the warm-up would add to the boot what it saves on the load, and more.
const warmUpWanted = process.env.FAASBOX_WARM_UP !== '0';
delete process.env.FAASBOX_WARM_UP;
lib()
  .then(() => warmUpWanted && warmUp())
  .then(() =>
    send(
      JSON.stringify({
        type: 'ready',
        runtime: `nodejs${process.versions.node.split('.')[0]}`,
        pid: process.pid,
        bootMs: Math.round(performance.now() * 100) / 100,
      }),
    ),
  );

/**
 * One load and one invocation of a built-in no-op function, answered to nobody, before
 * "ready". A specialisation is the first time a stem cell runs these paths; this puts
 * their one-time costs (compiling the shim's functions and the stream code that reads
 * requests, creating process.stdout and process.stderr) into the boot, off the request
 * path: load plus first invocation 2.64 -> 1.78 ms, and 0.3 ms less again for taking the
 * requests in through the request stream's own path rather than calling dispatch().
 * Leaves nothing behind but the no-op module in the module cache.
 */
async function warmUp() {
  const cwd = process.cwd();
  await new Promise((resolve) => {
    warmIo = { send: (line) => line.startsWith('{"type":"result"') && resolve(), markers: () => Promise.resolve() };
    // Fed to the request stream as a chunk read from fd 3 is: the same stream code, line
    // splitter and dispatch run, only the replies go nowhere.
    requests.push(`${JSON.stringify({ type: 'load', codeDir: __dirname, entry: 'warm-up.mjs', handler: 'default', env: {} })}\n${JSON.stringify({ type: 'invoke', id: 'warm-up', event: {}, context: {} })}\n`);
  });
  warmIo = undefined;
  handler = undefined;
  process.chdir(cwd);
}
