/**
 * Python functions end to end, with real parts only: HTTP -> gateway -> BullMQ on a real
 * redis-server -> worker -> real containers from the python3 image running runtime.py.
 *
 * The pools keep python3 stem cells too, so a python3 function's first invocation is
 * served by specialising one (or, while none is ready yet, by booting a container), and
 * later ones find it warm.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startStack, type TestStack } from '../support/stack.js';

/** Debian's interpreter writes the zip (there is no zip tool on a minimal machine; busybox only unzips). */
const PYTHON = '/usr/bin/python3';

let s: TestStack;
before(async () => {
  s = await startStack('python');
});
after(async () => {
  await s.close();
});

test('deploy python3 code, invoke it synchronously: its JSON, cold first, then warm with module state kept', async () => {
  const d = await s.deploy('py-hello', {
    runtime: 'python3',
    code: `
calls = 0

def handler(event, context):
    global calls
    calls += 1
    return {'hello': event.get('name'), 'fn': context.function_name, 'id': context.invocation_id, 'calls': calls}
`,
  });
  assert.equal(d.status, 201, d.text);
  assert.deepEqual([d.json.spec.handler, d.json.spec.code.entry], ['handler', 'handler.py'], 'Lambda\'s defaults for python3');
  const r = await s.invoke('py-hello', { name: 'faasbox' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { hello: 'faasbox', fn: 'py-hello', id: r.headers.get('x-invocation-id'), calls: 1 });
  assert.ok(['cold', 'specialized'].includes(r.headers.get('x-cold-start')!), r.headers.get('x-cold-start')!);
  const again = await s.invoke('py-hello', { name: 'again' });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.headers.get('x-cold-start'), 'warm');
  assert.equal(again.json.calls, 2, 'the same interpreter kept the module-level counter');
  assert.equal(again.json.hello, 'again');
});

test('env is honoured, the raw request is context.http, and the function runs confined: nobody, its own pid namespace, no platform variables', async () => {
  await s.deploy('py-env', {
    runtime: 'python3',
    env: { GREETING: 'hej' },
    memoryMb: 96,
    code: `
import os

def handler(event, context):
    return {
        'greeting': os.environ.get('GREETING'),
        'leaked': sorted(k for k in os.environ if k.startswith(('FAASBOX_', 'PYTHON', 'LD_'))),
        'uid': os.getuid(),
        'pid1': open('/proc/1/comm').read().strip(),
        'cwd': os.getcwd(),
        'mb': context.memory_limit_in_mb,
        'remaining_ok': 0 < context.get_remaining_time_in_millis() <= 30000,
        'request': [context.http['method'], context.http['url'], context.http['headers'].get('x-trace'), context.http['body'].decode()],
    }
`,
  });
  const r = await s.invoke('py-env', { raw: 1 }, { query: '?q=1', headers: { 'x-trace': 'abc' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, {
    greeting: 'hej',
    leaked: [],
    uid: 65534,
    pid1: 'faasbox-init',
    cwd: '/var/task',
    mb: 96,
    remaining_ok: true,
    request: ['POST', '/v1/functions/py-env/invoke?q=1', 'abc', '{"raw":1}'],
  });
});

test('a raised exception is a 502 FUNCTION_ERROR with the Python traceback; the container keeps serving', async () => {
  await s.deploy('py-boom', {
    runtime: 'python3',
    code: `
n = 0

def check(event):
    if event.get('fail'):
        raise ValueError(f'bad input {n}')

def handler(event, context):
    global n
    n += 1
    check(event)
    return n
`,
  });
  const r = await s.invoke('py-boom', { fail: true });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json.error.code, 'FUNCTION_ERROR');
  assert.match(r.json.error.message, /bad input 1/);
  const text = JSON.stringify(r.json.error);
  assert.match(text, /ValueError/);
  assert.match(text, /Traceback \(most recent call last\)/);
  assert.match(text, /handler\.py\\", line 6, in check/);
  const ok = await s.invoke('py-boom', {});
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json, 2, 'the same warm container served the next call');
  assert.equal(ok.headers.get('x-cold-start'), 'warm');
});

test('a Lambda-proxy dict (statusCode, headers, body) is the HTTP answer', async () => {
  await s.deploy('py-web', {
    runtime: 'python3',
    code: `
import json

def handler(event, context):
    return {'statusCode': 201, 'headers': {'X-Made-By': 'faasbox', 'Content-Type': 'text/plain'}, 'body': 'made ' + event['what']}
`,
  });
  const r = await s.invoke('py-web', { what: 'tea' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get('x-made-by'), 'faasbox');
  assert.equal(r.headers.get('content-type'), 'text/plain');
  assert.equal(r.text, 'made tea');
});

test('an async def handler runs, and its output lands in the invocation record', async () => {
  await s.deploy('py-async', {
    runtime: 'python3',
    code: `
import asyncio
import sys

async def handler(event, context):
    print('out:', event['n'])
    print('err:', event['n'], file=sys.stderr)
    await asyncio.sleep(0.01)
    return event['n'] * 2
`,
  });
  const r = await s.invoke('py-async', { n: 21 }, { query: '?async=true' });
  assert.equal(r.status, 202, r.text);
  const loc = r.headers.get('location')!;
  const rec = await s.finished(loc, 20_000, 'the async invocation');
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.equal(rec.result, 42);
  assert.equal(rec.stdout, 'out: 21\n');
  assert.equal(rec.stderr, 'err: 21\n');
});

/** A package whose entry sits in a subdirectory and imports a sibling module and a data file. */
function writePackage(dir: string, flavour: string): void {
  mkdirSync(path.join(dir, 'app'), { recursive: true });
  writeFileSync(path.join(dir, 'app', 'pricing.py'), 'def total(items):\n    return sum(i["price"] * i["qty"] for i in items)\n');
  writeFileSync(path.join(dir, 'app', 'rate.txt'), '1.5\n');
  writeFileSync(
    path.join(dir, 'app', 'main.py'),
    `import pricing\n\nRATE = float(open('app/rate.txt').read())\n\ndef run(event, context):\n    return {'total': pricing.total(event['items']) * RATE, 'flavour': '${flavour}'}\n`,
  );
}

for (const format of ['tar.gz', 'zip'] as const) {
  test(`a ${format} package with two modules deploys and runs`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-pypkg-'));
    try {
      const src = path.join(dir, 'src');
      writePackage(src, format);
      let pkg: Buffer;
      if (format === 'tar.gz') {
        pkg = execFileSync('tar', ['-czf', '-', '-C', src, '.']);
      } else {
        const out = path.join(dir, 'code.zip');
        execFileSync(PYTHON, ['-I', '-m', 'zipfile', '-c', out, 'app'], { cwd: src });
        pkg = readFileSync(out);
      }
      const name = `py-pkg-${format.replace('.', '')}`;
      const d = await s.deploy(name, { runtime: 'python3', package: pkg.toString('base64'), entry: 'app/main.py', handler: 'run' });
      assert.equal(d.status, 201, d.text);
      const r = await s.invoke(name, { items: [{ price: 2, qty: 3 }, { price: 10, qty: 1 }] });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { total: 24, flavour: format });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a python3 function whose code does not import is a load failure, not a hang', async () => {
  await s.deploy('py-broken', { runtime: 'python3', code: 'import not_a_module_anywhere\n' });
  const r = await s.invoke('py-broken');
  assert.ok(r.status >= 400, r.text);
  assert.match(r.text, /not_a_module_anywhere/);
});
