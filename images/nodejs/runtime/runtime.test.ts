/**
 * The Node.js shim's protocol, run on the host's node (no container: the protocol logic
 * does not depend on one). Each test spawns its own shim with fds 3/4 as the worker does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeRuntimeEntry } from '../../sources.js';
import { type RuntimeMessage } from '../../protocol.js';
import { assertMarkerAfterBigWrite, assertSaysReady, shimSuite } from '../../../test/support/shim.js';

/** The Node.js shim as the image runs it, on the host's node. */
const { spawn, booted, codeDir } = shimSuite('faasbox-runtime-test-', process.execPath, [nodeRuntimeEntry()]);

test('says ready with its runtime, pid and boot time, and exits 0 when fd 3 closes', () => assertSaysReady(spawn(), 'nodejs20'));

test('the warm-up before "ready" leaves nothing behind: no function loaded, no reply, no output', async () => {
  const s = await booted();
  // The first reply after "ready" answers this request, and nothing was printed before its markers.
  const early = await s.invokeForOutput(null, 'early');
  assert.equal(early.result.ok, false);
  assert.equal((early.result as { error: { name: string } }).error.name, 'NotLoadedError');
  assert.deepEqual([early.stdout, early.stderr], ['', '']);
  await s.close();
});

test('FAASBOX_WARM_UP=0 (a cold start) skips the warm-up, and the function never sees the variable', async () => {
  const dir = codeDir({
    'index.mjs': `
      import { createRequire } from 'node:module';
      const warmedUp = Object.keys(createRequire(import.meta.url).cache).some((f) => f.endsWith('/warm-up.mjs'));
      export default async () => ({ warmedUp, hint: process.env.FAASBOX_WARM_UP ?? null });`,
  });
  for (const [env, warmedUp] of [[{}, true], [{ FAASBOX_WARM_UP: '0' }, false]] as const) {
    const s = await booted(env);
    assert.equal((await s.load(dir, 'index.mjs')).type, 'loaded');
    assert.deepEqual((await s.invoke(null)) as unknown, { type: 'result', id: 'inv-1', ok: true, value: { warmedUp, hint: null } }, JSON.stringify(env));
    await s.close();
  }
});

test('ESM plain handler: result, env applied, context, module state kept across invocations', async () => {
  const dir = codeDir({
    'index.mjs': `
      let count = 0;
      export default async (event, context) => {
        count++;
        return { count, echo: event, greeting: process.env.GREETING, id: context.invocationId,
                 fn: context.functionName, remaining: context.getRemainingTimeInMillis() };
      };`,
  });
  const s = await booted();
  const loaded = await s.load(dir, 'index.mjs', { env: { GREETING: 'hi' } });
  assert.equal(loaded.type, 'loaded');
  assert.ok((loaded as { ms: number }).ms >= 0);
  const r1 = await s.invoke({ a: 1 }, { id: 'one' });
  assert.equal(r1.id, 'one');
  assert.equal(r1.ok, true);
  const v1 = (r1 as { value: Record<string, unknown> }).value;
  assert.deepEqual({ ...v1, remaining: undefined }, { count: 1, echo: { a: 1 }, greeting: 'hi', id: 'one', fn: 'f', remaining: undefined });
  assert.ok((v1.remaining as number) > 50_000 && (v1.remaining as number) <= 60_000);
  const r2 = await s.invoke(null);
  assert.equal((r2 as { value: { count: number } }).value.count, 2);
  await s.close();
});

test('CJS: a .cjs default export, and a .js named export in a "type":"commonjs" package', async () => {
  const s = await booted();
  const cjs = codeDir({ 'main.cjs': `module.exports = async (e) => ({ kind: 'cjs', n: e.n + 1 });` });
  assert.equal((await s.load(cjs, 'main.cjs')).type, 'loaded');
  assert.deepEqual(await s.invoke({ n: 1 }).then((r) => (r as { value: unknown }).value), { kind: 'cjs', n: 2 });
  await s.close();

  const s2 = await booted();
  const js = codeDir({
    'package.json': '{"type":"commonjs"}',
    'lib/app.js': `exports.handler = (e, ctx) => ({ kind: typeof require, v: ctx.functionVersion });`,
  });
  assert.equal((await s2.load(js, 'lib/app.js', { handler: 'handler' })).type, 'loaded');
  assert.deepEqual(await s2.invoke({}).then((r) => (r as { value: unknown }).value), { kind: 'function', v: 'v1' });
  await s2.close();

  const s3 = await booted();
  const esmJs = codeDir({ 'package.json': '{"type":"module"}', 'index.js': `export const run = () => import.meta.url.endsWith('index.js');` });
  assert.equal((await s3.load(esmJs, 'index.js', { handler: 'run' })).type, 'loaded');
  assert.equal(await s3.invoke({}).then((r) => (r as { value: unknown }).value), true);
  await s3.close();
});

test('a module graph with top-level await loads (by import), and each module runs once', async () => {
  const s = await booted();
  const dir = codeDir({
    'dep.mjs': `globalThis.depRuns = (globalThis.depRuns ?? 0) + 1; export const base = 40;`,
    'index.mjs': `import { base } from './dep.mjs';
globalThis.mainRuns = (globalThis.mainRuns ?? 0) + 1;
const extra = await Promise.resolve(2);
export default async () => ({ v: base + extra, runs: [globalThis.mainRuns, globalThis.depRuns] });`,
  });
  assert.equal((await s.load(dir, 'index.mjs')).type, 'loaded');
  assert.deepEqual(await s.invoke({}).then((r) => (r as { value: unknown }).value), { v: 42, runs: [1, 1] });
  await s.close();
});

const FETCH_FN = `
  export default {
    async fetch(request, env, context) {
      const body = await request.text();
      return new Response(JSON.stringify({ method: request.method, url: request.url, body,
          a: request.headers.get('x-a'), ct: request.headers.get('content-type'), env: env.MODE, id: context.invocationId }), {
        status: 201, headers: { 'content-type': 'application/json', 'x-b': 'yes' } });
    },
  };`;

function decodeHttp(r: RuntimeMessage): { status: number; headers: Record<string, string>; body: string } {
  assert.equal(r.type, 'result');
  assert.ok('http' in r, `expected an http result, got ${JSON.stringify(r)}`);
  return { ...r.http, body: Buffer.from(r.http.body, 'base64').toString('utf8') };
}

test('fetch-style handler gets a real Request from http, and its Response becomes status, headers, base64 body', async () => {
  const s = await booted();
  assert.equal((await s.load(codeDir({ 'index.mjs': FETCH_FN }), 'index.mjs', { env: { MODE: 'test' } })).type, 'loaded');
  const http = {
    method: 'PUT',
    url: '/things/7?x=1&y=2',
    headers: { host: 'example.test', 'x-a': 'from-header', 'content-type': 'text/plain', 'content-length': '5' },
    body: Buffer.from('hello').toString('base64'),
  };
  const res = decodeHttp(await s.invoke({ ignored: true }, { id: 'h1', http }));
  assert.equal(res.status, 201);
  assert.equal(res.headers['x-b'], 'yes');
  assert.equal(res.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(res.body), {
    method: 'PUT',
    url: 'http://example.test/things/7?x=1&y=2',
    body: 'hello',
    a: 'from-header',
    ct: 'text/plain',
    env: 'test',
    id: 'h1',
  });

  // path + query form, and a GET whose body must be dropped.
  const res2 = decodeHttp(await s.invoke(null, { http: { method: 'GET', path: '/p', query: { q: ['1', '2'] }, headers: {}, body: 'eA==' } }));
  const b2 = JSON.parse(res2.body) as { url: string; body: string; method: string };
  assert.deepEqual([b2.method, b2.url, b2.body], ['GET', 'http://localhost/p?q=1&q=2', '']);

  // Without http, the event arrives as a JSON POST.
  const res3 = decodeHttp(await s.invoke({ n: 5 }));
  const b3 = JSON.parse(res3.body) as { method: string; body: string; ct: string };
  assert.deepEqual([b3.method, JSON.parse(b3.body), b3.ct], ['POST', { n: 5 }, 'application/json']);
  await s.close();
});

test('a plain function may return a Response or a Lambda-proxy-style object', async () => {
  const s = await booted();
  const dir = codeDir({
    'index.mjs': `
      export const web = async (event, context) =>
        new Response(new Uint8Array([0, 1, 2, 255]), { status: 404, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']] });
      export const proxy = async (event) => ({ statusCode: 302, headers: { Location: '/there' }, body: 'moved' });
      export const proxyB64 = async () => ({ statusCode: 200, body: Buffer.from('bin').toString('base64'), isBase64Encoded: true });
      export const notProxy = async () => ({ statusCode: 200, other: 1 });
      export const usesRequest = async (event, context) => (await context.request.text()) + ' ' + context.request.method;`,
  });
  assert.equal((await s.load(dir, 'index.mjs', { handler: 'web' })).type, 'loaded');
  const web = await s.invoke(null);
  assert.ok('http' in web);
  assert.equal(web.http.status, 404);
  assert.deepEqual([...Buffer.from(web.http.body, 'base64')], [0, 1, 2, 255]);
  assert.equal(web.http.headers['set-cookie'], 'a=1, b=2');

  assert.equal((await s.load(dir, 'index.mjs', { handler: 'proxy' })).type, 'loaded');
  assert.deepEqual(decodeHttp(await s.invoke(null)), { status: 302, headers: { location: '/there' }, body: 'moved' });
  assert.equal((await s.load(dir, 'index.mjs', { handler: 'proxyB64' })).type, 'loaded');
  assert.deepEqual(decodeHttp(await s.invoke(null)), { status: 200, headers: {}, body: 'bin' });
  // Extra keys: it is the function's data, not an HTTP response.
  assert.equal((await s.load(dir, 'index.mjs', { handler: 'notProxy' })).type, 'loaded');
  assert.deepEqual((await s.invoke(null)) as unknown, { type: 'result', id: 'inv-4', ok: true, value: { statusCode: 200, other: 1 } });
  assert.equal((await s.load(dir, 'index.mjs', { handler: 'usesRequest' })).type, 'loaded');
  const http = { method: 'POST', url: '/', headers: {}, body: Buffer.from('raw').toString('base64') };
  assert.equal(((await s.invoke(null, { http })) as { value: unknown }).value, 'raw POST');
  await s.close();
});

test('a thrown error fails the invocation with name, message and stack; the runtime keeps serving', async () => {
  const s = await booted();
  const dir = codeDir({
    'index.mjs': `
      export default async (event) => {
        if (event.kind === 'throw') throw new RangeError('too far: ' + event.n);
        if (event.kind === 'string') throw 'just a string';
        if (event.kind === 'bigint') return { n: 1n };
        return 'fine';
      };`,
  });
  assert.equal((await s.load(dir, 'index.mjs')).type, 'loaded');
  const r = await s.invoke({ kind: 'throw', n: 3 });
  assert.equal(r.ok, false);
  assert.ok('error' in r);
  assert.equal(r.error.name, 'RangeError');
  assert.equal(r.error.message, 'too far: 3');
  assert.match(r.error.stack ?? '', /index\.mjs:\d+/);
  const str = await s.invoke({ kind: 'string' });
  assert.deepEqual(str.ok === false && str.error, { name: 'Error', message: 'just a string' });
  const big = await s.invoke({ kind: 'bigint' });
  assert.ok(big.ok === false && big.error.name === 'TypeError' && /JSON/.test(big.error.message), JSON.stringify(big));
  assert.equal(((await s.invoke({})) as { value: unknown }).value, 'fine');
  await s.close();
});

test('an unhandled rejection or uncaught exception fails only the invocation it happened in', async () => {
  const s = await booted();
  const dir = codeDir({
    'index.mjs': `
      export default async (event) => {
        if (event === 'reject') {
          Promise.reject(new Error('dropped promise'));
          await new Promise((r) => setTimeout(r, 200));
          return 'should not win';
        }
        if (event === 'reject-and-return') {
          Promise.reject(new Error('dropped on the way out'));
          return 'should not win either';
        }
        if (event === 'timer-throw') {
          setTimeout(() => { throw new TypeError('from a timer'); }, 5);
          return new Promise(() => {});
        }
        return 'ok';
      };`,
  });
  assert.equal((await s.load(dir, 'index.mjs')).type, 'loaded');
  const r1 = await s.invoke('reject');
  assert.ok(r1.ok === false && r1.error.message === 'dropped promise', JSON.stringify(r1));
  const r2 = await s.invoke('reject-and-return');
  assert.ok(r2.ok === false && r2.error.message === 'dropped on the way out', JSON.stringify(r2));
  const r3 = await s.invoke('timer-throw');
  assert.ok(r3.ok === false && r3.error.name === 'TypeError' && r3.error.message === 'from a timer', JSON.stringify(r3));
  // The first invocation's handler settles late ("should not win"); it must not leak into this one.
  await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual((await s.invoke('fine')) as unknown, { type: 'result', id: 'inv-4', ok: true, value: 'ok' });
  assert.equal(s.child.exitCode, null);
  await s.close();
});

test('end markers follow the function output on both stdout and stderr, and survive a patched stdout.write', async () => {
  const s = await booted();
  const dir = codeDir({
    'index.mjs': `
      export default async (event) => {
        console.log('out for', event.n);
        console.error('err for', event.n);
        process.stdout.write = () => true; // a function that swallows stdout must not swallow the marker
        return event.n;
      };`,
  });
  assert.equal((await s.load(dir, 'index.mjs')).type, 'loaded');
  assert.deepEqual(await s.invokeForOutput({ n: 1 }, 'a'), { result: { type: 'result', id: 'a', ok: true, value: 1 }, stdout: 'out for 1\n', stderr: 'err for 1\n' });
  // stdout.write was replaced by the first invocation: the function's output is gone, the marker is not.
  const second = await s.invokeForOutput({ n: 2 }, 'b');
  assert.deepEqual([second.stdout, second.stderr], ['', 'err for 2\n']);
  await s.close();
});

test('end marker follows a write too large for the pipe, still queued when the handler returns', async () => {
  const s = await booted();
  const dir = codeDir({ 'index.mjs': `export default async (n) => { process.stdout.write('y'.repeat(n) + 'END\\n'); return n; };` });
  await assertMarkerAfterBigWrite(s, dir, 'index.mjs', 2 << 20, 2 << 20);
  await s.close();
});

test('load errors: a missing entry, a missing export, a module that throws', async () => {
  const s = await booted();
  const missing = await s.load(codeDir({ 'other.mjs': 'export default () => 1;' }), 'index.mjs');
  assert.equal(missing.type, 'load-error');
  assert.ok(missing.type === 'load-error' && missing.error.code === 'ERR_MODULE_NOT_FOUND', JSON.stringify(missing));

  const noExport = await s.load(codeDir({ 'index.mjs': 'export const a = 1; export const b = () => 2;' }), 'index.mjs', { handler: 'main' });
  assert.ok(noExport.type === 'load-error' && noExport.error.name === 'HandlerNotFoundError', JSON.stringify(noExport));
  assert.match(noExport.type === 'load-error' ? noExport.error.message : '', /"main".*exports: a, b/);

  const throws = await s.load(codeDir({ 'index.mjs': 'throw new SyntaxError("bad top level");' }), 'index.mjs');
  assert.ok(throws.type === 'load-error' && throws.error.message === 'bad top level', JSON.stringify(throws));

  // Still alive, and an invoke before any successful load says so.
  const r = await s.invoke({});
  assert.ok(r.ok === false && r.error.name === 'NotLoadedError', JSON.stringify(r));
  await s.close();
});

test('a handler name is looked up among the module\'s own exports, never up the prototype chain', async () => {
  const s = await booted();
  const modules = {
    'index.mjs': 'export default async () => "default"; export const handler = async () => "named";',
    'fn.cjs': 'module.exports = async () => "cjs";',
    'obj.cjs': 'module.exports = { handler: async () => "cjs named" };',
  };
  const dir = codeDir(modules);
  for (const entry of Object.keys(modules)) {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', 'call', 'bind']) {
      const r = await s.load(dir, entry, { handler: name });
      assert.ok(r.type === 'load-error' && r.error.name === 'HandlerNotFoundError', `${entry} ${name}: ${JSON.stringify(r)}`);
      assert.match(r.type === 'load-error' ? r.error.message : '', new RegExp(`has no export "${name}"`));
    }
  }
  // Own exports still resolve, named and default, ESM and CommonJS.
  for (const [entry, handler, value] of [['index.mjs', 'handler', 'named'], ['index.mjs', 'default', 'default'], ['fn.cjs', 'default', 'cjs'], ['obj.cjs', 'handler', 'cjs named']] as const) {
    assert.equal((await s.load(dir, entry, { handler })).type, 'loaded', `${entry} ${handler}`);
    const r = await s.invoke({});
    assert.ok(r.ok === true && 'value' in r && r.value === value, `${entry} ${handler}: ${JSON.stringify(r)}`);
  }
  await s.close();
});

test('an invoke with bodyBytes: the raw body follows the line, however it is chunked; the event is its JSON and the Request has its bytes', async () => {
  const dir = codeDir({
    'index.mjs': `export default async (event, context) => ({ event, text: await context.request.text(), method: context.request.method });`,
    'web.mjs': `export default { async fetch(req) { return new Response('got ' + (await req.text())); } };`,
  });
  const s = await booted();
  assert.equal((await s.load(dir, 'index.mjs')).type, 'loaded');
  const context = { invocationId: 'x', functionName: 'f', functionVersion: 'v1', memoryLimitMb: 128, deadline: Date.now() + 60_000 };
  const http = { method: 'POST', url: '/f', headers: { 'content-type': 'application/json' } };
  const body = Buffer.from('{"caf\u00e9":"\u20ac","n":[1,2,3]}');
  const line = (id: string, b: Buffer) => Buffer.from(`${JSON.stringify({ type: 'invoke', id, context, http, bodyBytes: b.length })}\n`);
  // The line, the body cut inside a multi-byte character, and the next request in the same write as the body's end.
  const all = Buffer.concat([line('a', body), body, line('b', Buffer.alloc(0)), line('c', body), body]);
  const cuts = [5, all.indexOf(body) + 3, all.indexOf(body) + body.length - 2];
  let at = 0;
  for (const cut of [...cuts, all.length]) {
    s.requests.write(all.subarray(at, cut));
    await new Promise((r) => setTimeout(r, 20));
    at = cut;
  }
  const expected = { event: { 'caf\u00e9': '\u20ac', n: [1, 2, 3] }, text: body.toString(), method: 'POST' };
  assert.deepEqual(await s.next(), { type: 'result', id: 'a', ok: true, value: expected });
  assert.deepEqual(await s.next(), { type: 'result', id: 'b', ok: true, value: { event: null, text: '', method: 'POST' } });
  assert.deepEqual(await s.next(), { type: 'result', id: 'c', ok: true, value: expected });
  // A fetch-style handler reads the same bytes.
  assert.equal((await s.load(dir, 'web.mjs')).type, 'loaded');
  s.requests.write(Buffer.concat([line('d', body), body]));
  const d = (await s.next()) as { http?: { body: string } };
  assert.equal(Buffer.from(d.http!.body, 'base64').toString(), `got ${body.toString()}`);
  await s.close();
});
