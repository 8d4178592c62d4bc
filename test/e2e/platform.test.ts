/**
 * The product's main path end to end, with real parts only: HTTP -> gateway -> BullMQ on
 * a real redis-server -> worker -> real containers running the Node.js runtime.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { dumpRedis } from '../support/redis-dump.js';
import { FunctionRegistry } from '../../common/registry.js';

let s: TestStack;
before(async () => {
  s = await startStack('platform');
});
after(async () => {
  await s.close();
});

test('deploy and invoke a JSON handler synchronously', async () => {
  const d = await s.deploy('hello', { runtime: 'nodejs20', code: 'export default async (event, ctx) => ({ hello: event.name, fn: ctx.functionName })' });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('hello', { name: 'faasbox' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { hello: 'faasbox', fn: 'hello' });
  assert.match(r.headers.get('x-invocation-id') ?? '', /^[0-9a-f-]{36}$/);
  assert.ok(['specialized', 'cold'].includes(r.headers.get('x-cold-start')!), r.headers.get('x-cold-start')!);
  assert.match(r.headers.get('server-timing') ?? '', /queue;dur=[\d.]+.*init;dur=[\d.]+.*exec;dur=[\d.]+/);
  const again = await s.invoke('hello', { name: 'again' });
  assert.equal(again.headers.get('x-cold-start'), 'warm');
  assert.deepEqual(again.json, { hello: 'again', fn: 'hello' });
});

test('an HTTP-style handler answers with its own status, headers and body', async () => {
  await s.deploy('web', {
    runtime: 'nodejs20',
    code: 'export default { async fetch(req) { const body = await req.json(); return new Response("made " + body.what, { status: 201, headers: { "x-made-by": "faasbox" } }); } }',
  });
  const r = await s.invoke('web', { what: 'tea' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get('x-made-by'), 'faasbox');
  assert.equal(r.text, 'made tea');
});

test("the platform's headers win over a function's, and a malformed HTTP answer is the function's error (502 naming the header or status)", async () => {
  // A Lambda-proxy answer chosen by the event: a Response would refuse most of these itself.
  const d = await s.deploy('badweb', {
    runtime: 'nodejs20',
    code: `const answers = {
  spoof: { statusCode: 200, headers: { 'x-invocation-id': 'forged', 'X-Function-Version': '999', 'x-cold-start': 'forged', 'server-timing': 'forged;dur=0', 'x-own': 'kept' }, body: 'spoofed' },
  crlf: { statusCode: 200, headers: { 'x-bad': 'a\\r\\nx-injected: 1' }, body: '' },
  name: { statusCode: 200, headers: { 'bad name': 'v' }, body: '' },
  ascii: { statusCode: 200, headers: { 'x-u': 'caf\u00e9 \u20ac' }, body: '' },
  big: { statusCode: 200, headers: { 'x-big': 'a'.repeat(200000) }, body: '' },
  switch: { statusCode: 101, headers: { upgrade: 'websocket' }, body: '' },
  fine: { statusCode: 418, headers: { 'x-tea': 'pot' }, body: 'short and stout' },
};
export default async (e) => answers[e.a];`,
  });
  assert.equal(d.status, 201, d.text);
  const spoof = await s.invoke('badweb', { a: 'spoof' });
  assert.equal(spoof.status, 200, spoof.text);
  assert.match(spoof.headers.get('x-invocation-id') ?? '', /^[0-9a-f-]{36}$/);
  assert.equal(spoof.headers.get('x-function-version'), d.json.version);
  assert.ok(['warm', 'specialized', 'cold'].includes(spoof.headers.get('x-cold-start')!), spoof.headers.get('x-cold-start')!);
  assert.match(spoof.headers.get('server-timing') ?? '', /^queue;dur=/);
  assert.equal(spoof.headers.get('x-own'), 'kept');
  assert.equal(spoof.text, 'spoofed');
  const refused: [string, RegExp][] = [
    ['crlf', /header "x-bad" has a CR or LF in its value/],
    ['name', /header name "bad name" is not a valid HTTP field name/],
    ['ascii', /header "x-u" has a non-ASCII character/],
    ['big', /headers exceed 8192 bytes \(at header "x-big"\)/],
    ['switch', /status 101 is not a final HTTP status \(200-599\)/],
  ];
  for (const [a, message] of refused) {
    const r = await s.invoke('badweb', { a });
    assert.equal(r.status, 502, `${a}: ${r.text}`);
    assert.equal(r.json?.error?.code, 'FUNCTION_ERROR', `${a}: ${r.text}`);
    assert.match(r.json.error.message, message, a);
    assert.equal(r.headers.get('x-injected'), null);
    assert.match(r.headers.get('x-invocation-id') ?? '', /^[0-9a-f-]{36}$/);
  }
  // The container stays in service: a malformed answer is an ordinary function error.
  const fine = await s.invoke('badweb', { a: 'fine' });
  assert.equal(fine.status, 418, fine.text);
  assert.equal(fine.text, 'short and stout');
  assert.equal(fine.headers.get('x-cold-start'), 'warm');
});

test('async invoke: 202 with a Location, then the record has status, result, timings and output', async () => {
  await s.deploy('logger', { runtime: 'nodejs20', code: 'export default async (e) => { console.log("out:" + e.n); console.error("err:" + e.n); return e.n * 2; }' });
  const r = await s.invoke('logger', { n: 21 }, { query: '?async=true' });
  assert.equal(r.status, 202, r.text);
  const loc = r.headers.get('location')!;
  assert.match(loc, /^\/v1\/invocations\//);
  const rec = await s.finished(loc, 15_000, 'the async invocation');
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.equal(rec.result, 42);
  assert.equal(rec.stdout, 'out:21\n');
  assert.equal(rec.stderr, 'err:21\n');
  assert.ok(rec.timings.execMs >= 0 && rec.timings.totalMs >= 0);
  const pref = await s.invoke('logger', { n: 1 }, { headers: { prefer: 'respond-async' } });
  assert.equal(pref.status, 202);
});

test('a running invocation shows its output so far: output is streamed into the record', async () => {
  await s.deploy('slowlog', {
    runtime: 'nodejs20',
    code: 'export default async () => { console.log("step 1"); await new Promise((r) => setTimeout(r, 1500)); console.log("step 2"); return "done"; }',
    timeoutMs: 10_000,
  });
  const r = await s.invoke('slowlog', {}, { query: '?async=true' });
  assert.equal(r.status, 202);
  const loc = r.headers.get('location')!;
  let mid: { status: string; stdout: string } | undefined;
  await eventually(async () => {
    mid = (await s.get(loc)).json;
    return mid?.stdout === 'step 1\n';
  }, 10_000, 'the first line in the record');
  assert.equal(mid?.status, 'running');
  let end: { status: string; stdout: string } | undefined;
  await eventually(async () => {
    end = (await s.get(loc)).json;
    return end?.status === 'succeeded';
  }, 15_000, 'the end of the invocation');
  assert.equal(end?.stdout, 'step 1\nstep 2\n');
});

test('a deploy pre-pulls the version\'s code layer onto the worker before its first invocation', async () => {
  const d = await s.deploy('prepulled', { runtime: 'nodejs20', code: 'export default async () => "pulled"' });
  assert.equal(d.status, 201, d.text);
  const layer = path.join(s.worker.engine.stateDir, 'layers', 'code', d.json.spec.code.digest);
  await eventually(() => existsSync(layer), 10_000, 'the code layer to be unpacked');
  assert.ok(existsSync(path.join(layer, 'index.mjs')));
  const r = await s.invoke('prepulled', {});
  assert.equal(r.json, 'pulled');
});

test('env and limits are honoured inside the container', async () => {
  await s.deploy('envy', {
    runtime: 'nodejs20',
    env: { GREETING: 'hej' },
    memoryMb: 96,
    code: `import { readFileSync } from 'node:fs';
export default async () => ({ greeting: process.env.GREETING, leaked: Object.keys(process.env).filter((k) => k.startsWith('FAASBOX_') || k === 'NODE_EXTRA_CA_CERTS'),
  uid: process.getuid(), hostname: (await import('node:os')).hostname(), pid1: readFileSync('/proc/1/comm', 'utf8').trim() })`,
  });
  const r = await s.invoke('envy');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.greeting, 'hej');
  assert.deepEqual(r.json.leaked, []);
  assert.equal(r.json.uid, 65534);
  assert.equal(r.json.pid1, 'faasbox-init');
  const slot = s.worker.pool.slots().find((x) => x.fn?.startsWith('envy@'));
  assert.equal(slot?.memoryMb, 96, 'the container was sized for the function');
});

test('an env secret reaches the function, and no key or value in Redis holds it in clear', async () => {
  const secret = 'e2e-s3cret-never-in-redis-4242';
  const d = await s.deploy('sealed-env', {
    runtime: 'nodejs20',
    env: { API_TOKEN: secret },
    // The answer (stored in the record) is the value's digest, not the value.
    code: `import { createHash } from 'node:crypto';
export default async () => createHash('sha256').update(process.env.API_TOKEN ?? '').digest('hex')`,
  });
  assert.equal(d.status, 201, d.text);
  assert.ok(!d.text.includes(secret), 'the deploy answer shows the value');
  const r = await s.invoke('sealed-env');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json, createHash('sha256').update(secret).digest('hex'));
  const redis = new Redis(s.redis.url);
  try {
    const everything = await dumpRedis(redis);
    assert.ok(everything.length > 0);
    assert.deepEqual(everything.filter((line) => line.includes(secret) || line.includes(Buffer.from(secret).toString('base64'))), []);
  } finally {
    redis.disconnect();
  }
});

test('a function error is a 502 FUNCTION_ERROR with the stack; the container keeps serving', async () => {
  await s.deploy('boom', { runtime: 'nodejs20', code: 'let n = 0; export default async (e) => { n++; if (e.fail) throw new TypeError("bad input " + n); return n; }' });
  const r = await s.invoke('boom', { fail: true });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json.error.code, 'FUNCTION_ERROR');
  assert.match(r.json.error.message, /bad input 1/);
  assert.match(JSON.stringify(r.json.error), /TypeError/);
  const ok = await s.invoke('boom', {});
  assert.equal(ok.json, 2, 'the same warm container served the next call');
});

test('a function past its timeout gets 504 TIMEOUT and its container is killed', async () => {
  await s.deploy('slow', { runtime: 'nodejs20', timeoutMs: 300, code: 'export default async () => { while (true) {} }' });
  const t = Date.now();
  const r = await s.invoke('slow');
  assert.equal(r.status, 504, r.text);
  assert.equal(r.json.error.code, 'TIMEOUT');
  assert.ok(Date.now() - t < 5000);
  await eventually(() => !s.worker.pool.slots().some((x) => x.fn?.startsWith('slow@')), 5000, 'the timed-out container to go');
});

test('a memory hog gets OOM_KILLED, reported as such', async () => {
  await s.deploy('hog', { runtime: 'nodejs20', memoryMb: 64, code: 'const keep = []; export default async () => { for (;;) keep.push(Buffer.alloc(1 << 20, 1)); }' });
  const r = await s.invoke('hog');
  assert.equal(r.json?.error?.code, 'OOM_KILLED', r.text);
  assert.equal(r.status, 507);
});

test('update creates a new version and invocations run it; identical redeploy does not', async () => {
  const v1 = await s.deploy('ver', { runtime: 'nodejs20', code: 'export default async () => "one"' });
  assert.equal((await s.invoke('ver')).json, 'one');
  const same = await s.deploy('ver', { runtime: 'nodejs20', code: 'export default async () => "one"' });
  assert.equal(same.json.version, v1.json.version);
  const v2 = await s.deploy('ver', { runtime: 'nodejs20', code: 'export default async () => "two"' });
  assert.notEqual(v2.json.version, v1.json.version);
  const r = await s.invoke('ver');
  assert.equal(r.json, 'two');
  assert.equal(r.headers.get('x-function-version'), v2.json.version);
});

test('a tar.gz package with an entry deploys and runs', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-pkg-'));
  try {
    mkdirSync(path.join(dir, 'lib'));
    writeFileSync(path.join(dir, 'lib', 'math.mjs'), 'export const double = (x) => x * 2;');
    writeFileSync(path.join(dir, 'main.mjs'), 'import { double } from "./lib/math.mjs"; export const handler = async (e) => double(e.x);');
    const pkg = execFileSync('tar', ['-czf', '-', '-C', dir, '.']).toString('base64');
    const d = await s.deploy('pkg', { runtime: 'nodejs20', package: pkg, entry: 'main.mjs', handler: 'handler' });
    assert.equal(d.status, 201, d.text);
    const r = await s.invoke('pkg', { x: 21 });
    assert.equal(r.json, 42, r.text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('delete removes the function and its warm containers', async () => {
  await s.deploy('gone', { runtime: 'nodejs20', code: 'export default async () => 1' });
  assert.equal((await s.invoke('gone')).status, 200);
  assert.ok(s.worker.pool.slots().some((x) => x.fn?.startsWith('gone@')));
  assert.equal((await s.del('/v1/functions/gone')).status, 200);
  await eventually(() => !s.worker.pool.slots().some((x) => x.fn?.startsWith('gone@')), 5000, 'warm containers of a deleted function to go');
  const r = await s.invoke('gone');
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'FUNCTION_NOT_FOUND');
});

test('bad input gets a 4xx with a JSON error body', async () => {
  const cases: [Promise<{ status: number; json: any }>, number, string][] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    [s.invoke('no-such-fn'), 404, 'FUNCTION_NOT_FOUND'],
    [s.deploy('Bad_Name', { runtime: 'nodejs20', code: 'x' }), 400, 'VALIDATION_FAILED'],
    [s.deploy('ok-name', { runtime: 'cobol', code: 'x' }), 400, 'VALIDATION_FAILED'],
    [s.deploy('ok-name', { runtime: 'nodejs20', code: 'x', memoryMb: 1 }), 400, 'VALIDATION_FAILED'],
    [s.deploy('ok-name', { runtime: 'nodejs20', code: 'x'.repeat(11 * 1024 * 1024) }), 413, 'PAYLOAD_TOO_LARGE'],
    [s.invoke('hello', {}, { key: null }), 401, 'UNAUTHORIZED'],
    [s.invoke('hello', {}, { key: 'wrong-key-0123456789' }), 403, 'FORBIDDEN'],
    [s.get('/v1/invocations/00000000-0000-0000-0000-000000000000'), 404, 'INVOCATION_NOT_FOUND'],
  ];
  for (const [p, status, code] of cases) {
    const r = await p;
    assert.equal(r.status, status, `${code}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json?.error?.code, code);
    assert.equal(typeof r.json.error.message, 'string');
  }
});

test('a public function is invocable without a key', async () => {
  await s.deploy('open', { runtime: 'nodejs20', public: true, code: 'export default async () => "hi"' });
  const r = await s.invoke('open', {}, { key: null });
  assert.equal(r.status, 200);
  assert.equal(r.json, 'hi');
});

test('metrics pass promtool and show start kinds, pool state, CPU and memory per function', async () => {
  const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${STACK_KEY}` } });
  assert.equal(res.status, 200);
  const text = await res.text();
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.error, undefined, 'promtool (Debian package prometheus) must be installed');
  // promtool exits 1 on lint warnings too; only real problems are failures here.
  const problems = `${check.stdout}${check.stderr}`.split('\n').filter((l) => l.trim() && !/counter metrics should have "_total" suffix|no help text|should not include/.test(l));
  assert.deepEqual(problems, [], `promtool: ${check.stdout}${check.stderr}`);
  for (const kind of ['warm', 'specialized']) {
    assert.match(text, new RegExp(`faasbox_cold_start_seconds_count\\{kind="${kind}",runtime="nodejs20"\\} [1-9]`), `a ${kind} start was counted`);
  }
  assert.match(text, /faasbox_pool_containers\{kind="(stem|function)",state="idle",runtime="nodejs20"\} [1-9]/);
  assert.match(text, /faasbox_function_cpu_seconds_total\{function="hello"\} [0-9.e-]+/);
  assert.match(text, /faasbox_function_memory_peak_bytes\{function="hello"\} [1-9]/);
  assert.match(text, /faasbox_pool_specializations_total\{runtime="nodejs20"\} [1-9]/);
  assert.match(text, /faasbox_pool_evictions_total\{reason="[a-z]+"\} [1-9]/);
  assert.match(text, /faasbox_pool_memory_committed_bytes [1-9]/);
});

test('metrics need a token, and a deleted function leaves them: gateway and worker series alike', async () => {
  const none = await fetch(`${s.url}/metrics`);
  assert.equal(none.status, 401);
  assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');

  await s.deploy('ephemeral', { runtime: 'nodejs20', code: 'export default async () => "brief"' });
  assert.equal((await s.invoke('ephemeral')).status, 200);
  const scrape = async () => (await s.get('/metrics')).text;
  await eventually(async () => /faasbox_worker_invocations_total\{function="ephemeral"/.test(await scrape()), 10_000, 'the worker counted the invocation');
  assert.match(await scrape(), /faasbox_invocation_duration_seconds_count\{function="ephemeral"/);

  // Deleted through another process's registry: this gateway and this worker hear of it
  // only by the 'deleted' event, as in a deployment with several of each.
  const redis = new Redis(s.redis.url);
  try {
    await new FunctionRegistry(redis, s.prefix).delete('ephemeral');
  } finally {
    redis.disconnect();
  }
  await eventually(async () => !(await scrape()).includes('ephemeral'), 10_000, 'the deleted function left /metrics');
  assert.match(await scrape(), /function="hello"/, 'other functions keep their series');
  // And one deleted through this gateway's API, earlier in this file.
  assert.doesNotMatch(await scrape(), /function="gone"/);
});

