/**
 * The Python shim's protocol, run on the host's Debian python3 (no container: the
 * protocol logic does not depend on one). Each test spawns its own shim with fds 3/4 as
 * the worker does, with the flags the image uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { imagesSourceDir } from '../../sources.js';
import { PYTHON_FLAGS } from '../../protocol.js';
import { assertMarkerAfterBigWrite, assertSaysReady, shimSuite, type Result } from '../../../test/support/shim.js';

/** Debian's interpreter, the one the image is built from (never a PATH lookup). */
const PYTHON = '/usr/bin/python3';
const ENTRY = path.join(imagesSourceDir(), 'python3', 'runtime', 'runtime.py');

/** The Python shim with the image's flags (-B: the shim's own dir gets no __pycache__ from a test run). */
const { spawn, booted, codeDir } = shimSuite('faasbox-pyruntime-test-', PYTHON, [...PYTHON_FLAGS, ENTRY]);

const valueOf = (r: Result): unknown => {
  assert.ok(r.ok && 'value' in r, JSON.stringify(r));
  return r.value;
};
const errorOf = (r: Result) => {
  assert.ok(!r.ok, JSON.stringify(r));
  return r.error;
};

test('says ready with its runtime, pid and boot time, and exits 0 when fd 3 closes', () => assertSaysReady(spawn(), 'python3'));

test('the worker\'s FAASBOX_WARM_UP hint (for the Node.js shim) is not in the function\'s environment', async () => {
  const dir = codeDir({ 'handler.py': "import os\n\ndef handler(event, context):\n    return os.environ.get('FAASBOX_WARM_UP')\n" });
  const s = await booted({ FAASBOX_WARM_UP: '0' });
  assert.equal((await s.load(dir, 'handler.py')).type, 'loaded');
  assert.equal(valueOf(await s.invoke(null)), null);
  await s.close();
});

test('plain handler: result, env applied, cwd, Lambda context, sibling import, module state kept', async () => {
  const dir = codeDir({
    'helper.py': 'def shout(s):\n    return s.upper()\n',
    'data.txt': 'beside the code',
    'handler.py': `
import os
import helper

count = 0

def handler(event, context):
    global count
    count += 1
    return {
        'count': count, 'echo': event, 'greeting': os.environ.get('GREETING'), 'loud': helper.shout('hi'),
        'file': open('data.txt').read(), 'id': context.invocation_id, 'aws': context.aws_request_id,
        'fn': context.function_name, 'version': context.function_version, 'mb': context.memory_limit_in_mb,
        'remaining': context.get_remaining_time_in_millis(), 'http': context.http,
    }
`,
  });
  const s = await booted();
  const loaded = await s.load(dir, 'handler.py', { env: { GREETING: 'hello' } });
  assert.equal(loaded.type, 'loaded', JSON.stringify(loaded));
  assert.ok((loaded as { ms: number }).ms >= 0);
  const r1 = await s.invoke({ a: [1, 'x'] }, { id: 'one' });
  assert.equal(r1.id, 'one');
  const v1 = valueOf(r1) as Record<string, unknown>;
  assert.deepEqual(
    { ...v1, remaining: undefined },
    { count: 1, echo: { a: [1, 'x'] }, greeting: 'hello', loud: 'HI', file: 'beside the code', id: 'one', aws: 'one', fn: 'f', version: 'v1', mb: 128, remaining: undefined, http: null },
  );
  assert.ok((v1.remaining as number) > 50_000 && (v1.remaining as number) <= 60_000, String(v1.remaining));
  assert.equal((valueOf(await s.invoke(null)) as { count: number }).count, 2);
  await s.close();
});

test('the handler name: "default" means handler, a named one is used, None becomes null', async () => {
  const s = await booted();
  const dir = codeDir({ 'app.py': 'def handler(e, c):\n    return "h"\n\ndef main(e, c):\n    return None\n' });
  assert.equal((await s.load(dir, 'app.py', { handler: 'default' })).type, 'loaded');
  assert.equal(valueOf(await s.invoke({})), 'h');
  assert.equal((await s.load(dir, 'app.py', { handler: 'main' })).type, 'loaded');
  assert.deepEqual(await s.invoke({}), { type: 'result', id: 'inv-2', ok: true, value: null });
  await s.close();
});

test('async def handlers run on one event loop that lives across invocations', async () => {
  const s = await booted();
  const dir = codeDir({
    'handler.py': `
import asyncio

loop_ids = []

async def handler(event, context):
    await asyncio.sleep(0.01)
    loop_ids.append(id(asyncio.get_running_loop()))
    return {'n': event['n'] * 2, 'same_loop': len(set(loop_ids)) == 1, 'calls': len(loop_ids)}
`,
  });
  assert.equal((await s.load(dir, 'handler.py')).type, 'loaded');
  assert.deepEqual(valueOf(await s.invoke({ n: 2 })), { n: 4, same_loop: true, calls: 1 });
  assert.deepEqual(valueOf(await s.invoke({ n: 5 })), { n: 10, same_loop: true, calls: 2 });
  await s.close();
});

function decodeHttp(r: Result): { status: number; headers: Record<string, string>; body: string } {
  assert.ok(r.ok && 'http' in r, `expected an http result, got ${JSON.stringify(r)}`);
  return { ...r.http, body: Buffer.from(r.http.body, 'base64').toString('utf8') };
}

test('Lambda-proxy results become HTTP replies shaped like the Node shim\'s; other dicts stay values', async () => {
  const s = await booted();
  const dir = codeDir({
    'handler.py': `
import base64

def proxy(event, context):
    return {'statusCode': 302, 'headers': {'Location': '/there', 'X-Flag': True}, 'body': 'moved'}

def b64(event, context):
    return {'statusCode': 200, 'body': base64.b64encode(b'\\x00\\x01\\xff').decode(), 'isBase64Encoded': True}

def multi(event, context):
    return {'statusCode': 201, 'multiValueHeaders': {'Set-Cookie': ['a=1', 'b=2']}, 'cookies': ['c=3'], 'body': {'made': event}}

def sees_http(event, context):
    h = context.http
    return {'statusCode': 200, 'body': h['method'] + ' ' + h['url'] + ' ' + h['body'].decode() + ' ' + h['headers']['x-a']}

def not_proxy(event, context):
    return {'statusCode': 200, 'other': 1}
`,
  });
  assert.equal((await s.load(dir, 'handler.py', { handler: 'proxy' })).type, 'loaded');
  assert.deepEqual(decodeHttp(await s.invoke(null)), { status: 302, headers: { location: '/there', 'x-flag': 'true' }, body: 'moved' });

  assert.equal((await s.load(dir, 'handler.py', { handler: 'b64' })).type, 'loaded');
  const bin = await s.invoke(null);
  assert.ok(bin.ok && 'http' in bin);
  assert.deepEqual([...Buffer.from(bin.http.body, 'base64')], [0, 1, 255]);

  assert.equal((await s.load(dir, 'handler.py', { handler: 'multi' })).type, 'loaded');
  assert.deepEqual(decodeHttp(await s.invoke({ k: 1 })), {
    status: 201,
    headers: { 'set-cookie': 'a=1, b=2, c=3', 'content-type': 'application/json' },
    body: '{"made":{"k":1}}',
  });

  assert.equal((await s.load(dir, 'handler.py', { handler: 'sees_http' })).type, 'loaded');
  const http = { method: 'post', path: '/p', query: { q: ['1', '2'] }, headers: { 'x-a': 'A' }, body: Buffer.from('raw').toString('base64') };
  assert.equal(decodeHttp(await s.invoke(null, { http })).body, 'POST /p?q=1&q=2 raw A');

  assert.equal((await s.load(dir, 'handler.py', { handler: 'not_proxy' })).type, 'loaded');
  assert.deepEqual(valueOf(await s.invoke(null)), { statusCode: 200, other: 1 });
  await s.close();
});

test('a raised exception fails the invocation with its class, message and the Python traceback; the runtime keeps serving', async () => {
  const s = await booted();
  const dir = codeDir({
    'handler.py': `
import sys

class QuotaError(Exception):
    code = 'QUOTA'

def inner(n):
    raise ValueError(f'too far: {n}')

async def handler(event, context):
    kind = event['kind']
    if kind == 'raise':
        inner(event['n'])
    if kind == 'custom':
        raise QuotaError('over')
    if kind == 'set':
        return {1, 2}
    if kind == 'nan':
        return float('nan')
    if kind == 'exit':
        sys.exit(3)
    if kind == 'key':
        return {}['missing']
    return 'fine'
`,
  });
  assert.equal((await s.load(dir, 'handler.py')).type, 'loaded');
  const e = errorOf(await s.invoke({ kind: 'raise', n: 3 }));
  assert.equal(e.name, 'ValueError');
  assert.equal(e.message, 'too far: 3');
  const stack = e.stack ?? '';
  assert.match(stack, /^Traceback \(most recent call last\):\n/);
  assert.match(stack, /handler\.py", line 13, in handler\n/);
  assert.match(stack, /handler\.py", line 8, in inner\n/);
  assert.match(stack, /ValueError: too far: 3\n$/);
  assert.doesNotMatch(stack, /_faasbox_handler|runtime\.py|asyncio/, 'the shim\'s and asyncio\'s frames are not the function\'s');

  assert.deepEqual({ ...errorOf(await s.invoke({ kind: 'custom' })), stack: undefined }, { name: 'QuotaError', message: 'over', code: 'QUOTA', stack: undefined });
  for (const kind of ['set', 'nan']) {
    const bad = errorOf(await s.invoke({ kind }));
    assert.ok(bad.name === 'TypeError' && /JSON-serialisable/.test(bad.message), JSON.stringify(bad));
  }
  const exit = errorOf(await s.invoke({ kind: 'exit' }));
  assert.deepEqual([exit.name, exit.message], ['SystemExit', '3']);
  assert.deepEqual([errorOf(await s.invoke({ kind: 'key' })).name, errorOf(await s.invoke({ kind: 'key' })).message], ['KeyError', "'missing'"]);
  assert.equal(valueOf(await s.invoke({ kind: 'ok' })), 'fine');
  assert.equal(s.child.exitCode, null);
  await s.close();
});

test('end markers follow the function output on stdout and stderr, and survive a replaced sys.stdout', async () => {
  const s = await booted();
  const dir = codeDir({
    'handler.py': `
import io
import sys

def handler(event, context):
    print('out for', event['n'])
    print('err for', event['n'], file=sys.stderr)
    sys.stdout.write('no newline')
    if event['n'] == 1:
        sys.stdout = io.StringIO()  # swallows the function's prints, must not swallow the marker
    return event['n']
`,
  });
  assert.equal((await s.load(dir, 'handler.py')).type, 'loaded');
  const first = await s.invokeForOutput({ n: 1 }, 'a');
  assert.equal(valueOf(first.result), 1);
  assert.deepEqual([first.stdout, first.stderr], ['out for 1\nno newline', 'err for 1\n']);
  // sys.stdout was replaced by the first invocation: the function's output is gone, the marker is not.
  const second = await s.invokeForOutput({ n: 2 }, 'b');
  assert.deepEqual([second.stdout, second.stderr], ['', 'err for 2\n']);
  await s.close();
});

test('end marker follows a write too large for the pipe; a multi-megabyte event arrives whole', async () => {
  const s = await booted();
  const dir = codeDir({ 'handler.py': `import sys\n\ndef handler(event, context):\n    sys.stdout.write('y' * event['n'] + 'END\\n')\n    return len(event['pad'])\n` });
  const r = await assertMarkerAfterBigWrite(s, dir, 'handler.py', { n: 2 << 20, pad: 'p'.repeat(3 << 20) }, 2 << 20);
  assert.equal(valueOf(r), 3 << 20);
  await s.close();
});

test('load errors: a missing entry, a missing handler, a syntax error, a module that raises; invoke before load', async () => {
  const s = await booted();
  const missing = await s.load(codeDir({ 'other.py': 'x = 1\n' }), 'handler.py');
  assert.ok(missing.type === 'load-error' && missing.error.name === 'ModuleNotFoundError', JSON.stringify(missing));
  assert.match(missing.type === 'load-error' ? missing.error.message : '', /handler\.py/);

  const noHandler = await s.load(codeDir({ 'handler.py': 'a = 1\n\ndef b(e, c):\n    return 2\n' }), 'handler.py', { handler: 'main' });
  assert.ok(noHandler.type === 'load-error' && noHandler.error.name === 'HandlerNotFoundError', JSON.stringify(noHandler));
  assert.match(noHandler.type === 'load-error' ? noHandler.error.message : '', /"main".*names: a, b/);

  const syntax = await s.load(codeDir({ 'handler.py': 'def handler(e, c):\n    return (\n' }), 'handler.py');
  assert.ok(syntax.type === 'load-error' && syntax.error.name === 'SyntaxError', JSON.stringify(syntax));
  assert.match(syntax.type === 'load-error' ? (syntax.error.stack ?? '') : '', /handler\.py", line 2/);

  const raises = await s.load(codeDir({ 'handler.py': 'import helper_that_is_not_there\n' }), 'handler.py');
  assert.ok(raises.type === 'load-error' && raises.error.name === 'ModuleNotFoundError', JSON.stringify(raises));
  assert.match(raises.type === 'load-error' ? (raises.error.stack ?? '') : '', /handler\.py", line 1, in <module>/);

  const r = await s.invoke({});
  assert.equal(errorOf(r).name, 'NotLoadedError');
  await s.close();
});

test('a request that is not JSON is reported on stderr and skipped', async () => {
  const s = await booted();
  s.requests.write('this is not json\n');
  assert.equal(errorOf(await s.invoke({})).name, 'NotLoadedError');
  assert.match(s.stderr, /faasbox-runtime: ignoring a request that is not JSON/);
  await s.close();
});

test('a handler name is looked up among the module\'s own names, never what modules inherit from their type', async () => {
  const s = await booted();
  const dir = codeDir({ 'handler.py': 'def handler(e, c):\n    return "own"\n' });
  for (const name of ['__class__', '__init_subclass__', '__dir__', '__new__', '__subclasshook__', '__reduce__', '__getattribute__']) {
    const r = await s.load(dir, 'handler.py', { handler: name });
    assert.ok(r.type === 'load-error' && r.error.name === 'HandlerNotFoundError', `${name}: ${JSON.stringify(r)}`);
  }
  assert.equal((await s.load(dir, 'handler.py', { handler: 'handler' })).type, 'loaded');
  assert.equal(valueOf(await s.invoke({})), 'own');
  await s.close();
});

test('an invoke with bodyBytes: the raw body follows the line, however it is chunked; the event is its JSON and context.http has its bytes', async () => {
  const dir = codeDir({ 'handler.py': "def handler(event, context):\n    return {'event': event, 'body': context.http['body'].decode('utf-8'), 'method': context.http['method']}\n" });
  const s = await booted();
  assert.equal((await s.load(dir, 'handler.py')).type, 'loaded');
  const context = { invocationId: 'x', functionName: 'f', functionVersion: 'v1', memoryLimitMb: 128, deadline: Date.now() + 60_000 };
  const http = { method: 'POST', url: '/f', headers: { 'content-type': 'application/json' } };
  const body = Buffer.from('{"caf\u00e9":"\u20ac","n":[1,2.0,3]}');
  const line = (id: string, b: Buffer) => Buffer.from(`${JSON.stringify({ type: 'invoke', id, context, http, bodyBytes: b.length })}\n`);
  const big = Buffer.from(JSON.stringify({ blob: 'z'.repeat(300_000) }));
  const all = Buffer.concat([line('a', body), body, line('b', Buffer.alloc(0)), line('c', big), big, line('d', body), body]);
  const cuts = [5, all.indexOf(body) + 3, all.indexOf(body) + body.length - 2, all.indexOf(big) + 70_000];
  let at = 0;
  for (const cut of [...cuts, all.length]) {
    s.requests.write(all.subarray(at, cut));
    await new Promise((r) => setTimeout(r, 20));
    at = cut;
  }
  const expected = { event: { 'caf\u00e9': '\u20ac', n: [1, 2.0, 3] }, body: body.toString(), method: 'POST' };
  assert.deepEqual(await s.next(), { type: 'result', id: 'a', ok: true, value: expected });
  assert.deepEqual(await s.next(), { type: 'result', id: 'b', ok: true, value: { event: null, body: '', method: 'POST' } });
  const c = (await s.next()) as { id: string; value: { event: { blob: string }; body: string } };
  assert.equal(c.id, 'c');
  assert.equal(c.value.event.blob.length, 300_000);
  assert.equal(c.value.body.length, big.length);
  assert.deepEqual(await s.next(), { type: 'result', id: 'd', ok: true, value: expected });
  await s.close();
});
