/** Deploy, list, get, versions and delete over the gateway's HTTP API, against real Redis. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { FunctionRegistry, type FunctionEvent } from '../../common/registry.js';
import { SecretBox } from '../../common/secrets.js';
import { versionOf } from '../../common/function-spec.js';
import { tar, zip } from '../support/archives.js';
import { redisForFile } from '../support/redis.js';
import { dumpRedis } from '../support/redis-dump.js';
import { API_KEY, auth, jsonHeaders, NODE_CODE, testGateway, type TestGateway } from './harness.js';

const server = redisForFile();
let gw: TestGateway;

beforeEach(async () => {
  gw = await testGateway(server, { maxDeployBytes: 64 * 1024, maxCodeBytes: 32 * 1024 });
});
afterEach(async () => {
  await gw.close();
});

async function body(res: Response): Promise<any> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  return res.json();
}

describe('deploy', () => {
  test('creates a function with normalized defaults and a content version', async () => {
    const { status, json } = await gw.deploy('hello', { runtime: 'nodejs20', code: NODE_CODE });
    assert.equal(status, 201);
    assert.equal(json.name, 'hello');
    assert.match(json.version, /^sha256:[0-9a-f]{64}$/);
    assert.equal(json.createdVersion, true);
    assert.equal(json.previousVersion, null);
    assert.deepEqual(json.spec, {
      name: 'hello',
      runtime: 'nodejs20',
      code: { kind: 'file', entry: 'index.mjs', digest: json.spec.code.digest, size: Buffer.byteLength(NODE_CODE) },
      handler: 'default',
      env: {},
      memoryMb: 128,
      cpu: 72, // 128 MB of 1769 MB per vCPU
      timeoutMs: 30000,
      concurrency: null,
      isolation: 'reuse',
      public: false,
      invokeKeys: 0,
    });
  });

  test('pidsLimit and diskMb are in the spec when given, and absent (defaulted by the worker) when not', async () => {
    const given = (await gw.deploy('limited', { runtime: 'nodejs20', code: NODE_CODE, pidsLimit: 20, diskMb: 16 })).json.spec;
    assert.equal(given.pidsLimit, 20);
    assert.equal(given.diskMb, 16);
    const plain = (await gw.deploy('plain', { runtime: 'nodejs20', code: NODE_CODE })).json.spec;
    assert.equal('pidsLimit' in plain, false);
    assert.equal('diskMb' in plain, false);
  });

  test('derives cpu from memory unless given', async () => {
    assert.equal((await gw.deploy('a', { runtime: 'nodejs20', code: NODE_CODE, memoryMb: 1769 })).json.spec.cpu, 1000);
    assert.equal((await gw.deploy('b', { runtime: 'nodejs20', code: NODE_CODE, memoryMb: 1769, cpu: 250 })).json.spec.cpu, 250);
  });

  test('io limits and userns are kept when given, and absent from the spec otherwise', async () => {
    const limited = await gw.deploy('io', { runtime: 'nodejs20', code: NODE_CODE, io: { readBps: 5 * 1024 * 1024, writeIops: 100 }, userns: true });
    assert.equal(limited.status, 201, JSON.stringify(limited.json));
    assert.deepEqual(limited.json.spec.io, { readBps: 5 * 1024 * 1024, writeIops: 100 });
    assert.equal(limited.json.spec.userns, true);
    const plain = await gw.deploy('plain', { runtime: 'nodejs20', code: NODE_CODE });
    assert.ok(!('io' in plain.json.spec) && !('userns' in plain.json.spec), JSON.stringify(plain.json.spec));
  });

  test('an identical re-deploy returns the same version; a change creates a new immutable one', async () => {
    const first = await gw.deploy('fn', { runtime: 'nodejs20', code: NODE_CODE });
    const again = await gw.deploy('fn', { runtime: 'nodejs20', code: NODE_CODE });
    assert.equal(again.status, 200);
    assert.equal(again.json.version, first.json.version);
    assert.equal(again.json.createdVersion, false);

    const codeChange = await gw.deploy('fn', { runtime: 'nodejs20', code: NODE_CODE + '\n// v2' });
    assert.equal(codeChange.status, 200);
    assert.notEqual(codeChange.json.version, first.json.version);
    assert.equal(codeChange.json.createdVersion, true);
    assert.equal(codeChange.json.previousVersion, first.json.version);

    const configChange = await gw.deploy('fn', { runtime: 'nodejs20', code: NODE_CODE + '\n// v2', memoryMb: 256 });
    assert.notEqual(configChange.json.version, codeChange.json.version);

    // The function points at the latest; the old versions are still there, unchanged.
    const current = await body(await gw.app.request('/v1/functions/fn', { headers: auth }));
    assert.equal(current.version, configChange.json.version);
    assert.equal(current.spec.memoryMb, 256);
    const versions = await body(await gw.app.request('/v1/functions/fn/versions', { headers: auth }));
    assert.deepEqual(
      versions.versions.map((v: { version: string }) => v.version).sort(),
      [first.json.version, codeChange.json.version, configChange.json.version].sort(),
    );
    const old = await body(await gw.app.request(`/v1/functions/fn/versions/${first.json.version}`, { headers: auth }));
    assert.equal(old.spec.code.digest, first.json.spec.code.digest);
    assert.equal(old.spec.memoryMb, 128);
    assert.deepEqual((await gw.deps.registry.getCode(old.spec.code.digest)).toString(), NODE_CODE);

    // Re-deploying the first content moves the pointer back without a new version.
    const back = await gw.deploy('fn', { runtime: 'nodejs20', code: NODE_CODE });
    assert.equal(back.json.version, first.json.version);
    assert.equal(back.json.createdVersion, false);
  });

  test('accepts tar.gz and zip packages with an entry', async () => {
    const tgz = gzipSync(tar([{ name: 'src/main.mjs', data: 'export const run = () => 1;' }]));
    const res = await gw.deploy('pkg', { runtime: 'nodejs20', package: tgz.toString('base64'), entry: 'src/main.mjs', handler: 'run' });
    assert.equal(res.status, 201);
    assert.equal(res.json.spec.code.kind, 'package');
    assert.equal(res.json.spec.code.format, 'tar.gz');
    assert.equal(res.json.spec.code.entry, 'src/main.mjs');
    assert.equal(res.json.spec.handler, 'run');
    assert.deepEqual(await gw.deps.registry.getCode(res.json.spec.code.digest), tgz);

    const z = await gw.deploy('pkgzip', { runtime: 'python3', package: zip([{ name: 'app.py', data: 'def main(e, c): return 1' }]).toString('base64'), entry: 'app.py', handler: 'main' });
    assert.equal(z.status, 201);
    assert.equal(z.json.spec.code.format, 'zip');
  });

  test('never returns invoke keys, only their count', async () => {
    const res = await gw.deploy('keyed', { runtime: 'nodejs20', code: NODE_CODE, invokeKeys: ['k'.repeat(20), 'j'.repeat(20)] });
    assert.equal(res.json.spec.invokeKeys, 2);
    assert.ok(!JSON.stringify(res.json).includes('k'.repeat(20)));
    assert.ok(!JSON.stringify(res.json).includes('invokeKeyDigests'));
  });
});

describe('deploy validation', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['unknown runtime', { runtime: 'ruby', code: NODE_CODE }, 'runtime'],
    ['memory too small', { runtime: 'nodejs20', code: NODE_CODE, memoryMb: 32 }, 'memoryMb'],
    ['memory too large', { runtime: 'nodejs20', code: NODE_CODE, memoryMb: 8192 }, 'memoryMb'],
    ['fractional memory', { runtime: 'nodejs20', code: NODE_CODE, memoryMb: 128.5 }, 'memoryMb'],
    ['timeout over 15 minutes', { runtime: 'nodejs20', code: NODE_CODE, timeoutMs: 900_001 }, 'timeoutMs'],
    ['zero concurrency', { runtime: 'nodejs20', code: NODE_CODE, concurrency: 0 }, 'concurrency'],
    ['cpu below minimum', { runtime: 'nodejs20', code: NODE_CODE, cpu: 1 }, 'cpu'],
    ['pidsLimit too small', { runtime: 'nodejs20', code: NODE_CODE, pidsLimit: 15 }, 'pidsLimit'],
    ['pidsLimit too large', { runtime: 'nodejs20', code: NODE_CODE, pidsLimit: 4097 }, 'pidsLimit'],
    ['fractional pidsLimit', { runtime: 'nodejs20', code: NODE_CODE, pidsLimit: 20.5 }, 'pidsLimit'],
    ['diskMb too small', { runtime: 'nodejs20', code: NODE_CODE, diskMb: 8 }, 'diskMb'],
    ['diskMb too large', { runtime: 'nodejs20', code: NODE_CODE, diskMb: 2049 }, 'diskMb'],
    ['diskMb not a number', { runtime: 'nodejs20', code: NODE_CODE, diskMb: '64' }, 'diskMb'],
    ['neither code nor package', { runtime: 'nodejs20' }, 'code'],
    ['both code and package', { runtime: 'nodejs20', code: NODE_CODE, package: gzipSync('x').toString('base64'), entry: 'a.js' }, 'package'],
    ['package without entry', { runtime: 'nodejs20', package: gzipSync('x').toString('base64') }, 'entry'],
    ['package not base64', { runtime: 'nodejs20', package: '%%%not base64%%%', entry: 'a.js' }, 'package'],
    ['package not an archive', { runtime: 'nodejs20', package: Buffer.from('plain text').toString('base64'), entry: 'a.js' }, 'package'],
    ['entry escaping the package', { runtime: 'nodejs20', package: gzipSync('x').toString('base64'), entry: '../etc/passwd' }, 'entry'],
    ['absolute entry', { runtime: 'nodejs20', package: gzipSync('x').toString('base64'), entry: '/abs.js' }, 'entry'],
    ['bad handler name', { runtime: 'nodejs20', code: NODE_CODE, handler: 'a-b' }, 'handler'],
    ['bad env key', { runtime: 'nodejs20', code: NODE_CODE, env: { '1ABC': 'x' } }, 'env.1ABC'],
    ['reserved env key', { runtime: 'nodejs20', code: NODE_CODE, env: { FAASBOX_WORKER: 'x' } }, 'env.FAASBOX_WORKER'],
    ['env over 4 KiB', { runtime: 'nodejs20', code: NODE_CODE, env: { BIG: 'x'.repeat(5000) } }, 'env'],
    ['non-string env value', { runtime: 'nodejs20', code: NODE_CODE, env: { A: 1 } }, 'env.A'],
    ['bad isolation', { runtime: 'nodejs20', code: NODE_CODE, isolation: 'shared' }, 'isolation'],
    ['short invoke key', { runtime: 'nodejs20', code: NODE_CODE, invokeKeys: ['short'] }, 'invokeKeys.0'],
    ['unknown field (typo)', { runtime: 'nodejs20', code: NODE_CODE, memory: 256 }, '(root)'],
    ['io read rate below 64 KiB/s', { runtime: 'nodejs20', code: NODE_CODE, io: { readBps: 1000 } }, 'io.readBps'],
    ['fractional io write rate', { runtime: 'nodejs20', code: NODE_CODE, io: { writeBps: 1048576.5 } }, 'io.writeBps'],
    ['io iops below 10', { runtime: 'nodejs20', code: NODE_CODE, io: { readIops: 1 } }, 'io.readIops'],
    ['negative io iops', { runtime: 'nodejs20', code: NODE_CODE, io: { writeIops: -5 } }, 'io.writeIops'],
    ['unknown io key', { runtime: 'nodejs20', code: NODE_CODE, io: { readMbps: 5 } }, 'io'],
    ['empty io', { runtime: 'nodejs20', code: NODE_CODE, io: {} }, 'io'],
    ['userns not a boolean', { runtime: 'nodejs20', code: NODE_CODE, userns: 'yes' }, 'userns'],
  ];
  for (const [what, spec, path] of cases) {
    test(`400 for ${what}, naming ${path}`, async () => {
      const { status, json } = await gw.deploy('bad', spec);
      assert.equal(status, 400, JSON.stringify(json));
      assert.equal(json.error.code, 'VALIDATION_FAILED');
      const paths = json.error.details.issues.map((i: { path: string }) => i.path);
      assert.ok(paths.includes(path), `expected an issue at ${path}, got ${JSON.stringify(json.error.details.issues)}`);
      // Nothing was stored.
      assert.equal((await gw.app.request('/v1/functions/bad', { headers: auth })).status, 404);
    });
  }

  test('400 for an invalid function name', async () => {
    for (const name of ['Upper', '1digit', 'under_score', 'x'.repeat(64), '-dash']) {
      const { status, json } = await gw.deploy(name, { runtime: 'nodejs20', code: NODE_CODE });
      assert.equal(status, 400, name);
      assert.equal(json.error.code, 'VALIDATION_FAILED');
      assert.equal(json.error.details.issues[0].path, '(root)');
      assert.match(json.error.message, /function name/);
    }
    assert.equal((await gw.deploy('x'.repeat(63), { runtime: 'nodejs20', code: NODE_CODE })).status, 201);
  });

  test('400 for a body that is not JSON', async () => {
    const res = await gw.app.request('/v1/functions/f', { method: 'PUT', headers: jsonHeaders, body: '{"runtime":' });
    assert.equal(res.status, 400);
    assert.equal((await body(res)).error.code, 'INVALID_JSON');
  });

  test('400 for JSON that is not an object', async () => {
    const res = await gw.app.request('/v1/functions/f', { method: 'PUT', headers: jsonHeaders, body: '[1,2]' });
    assert.equal(res.status, 400);
    assert.equal((await body(res)).error.code, 'VALIDATION_FAILED');
  });

  test('415 for a non-JSON content type', async () => {
    const res = await gw.app.request('/v1/functions/f', {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': 'text/plain' },
      body: JSON.stringify({ runtime: 'nodejs20', code: NODE_CODE }),
    });
    assert.equal(res.status, 415);
    assert.equal((await body(res)).error.code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('413 for a body over the deploy limit, with or without Content-Length', async () => {
    const big = JSON.stringify({ runtime: 'nodejs20', code: 'x'.repeat(100 * 1024) });
    const sized = await gw.app.request('/v1/functions/big', {
      method: 'PUT',
      headers: { ...jsonHeaders, 'Content-Length': String(big.length) },
      body: big,
    });
    assert.equal(sized.status, 413);
    assert.equal((await body(sized)).error.code, 'PAYLOAD_TOO_LARGE');

    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < big.length; i += 8192) controller.enqueue(new TextEncoder().encode(big.slice(i, i + 8192)));
        controller.close();
      },
    });
    const chunked = await gw.app.request('/v1/functions/big', { method: 'PUT', headers: jsonHeaders, body: stream, duplex: 'half' } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.equal((await body(chunked)).error.code, 'PAYLOAD_TOO_LARGE');
  });

  test('413 for code over the code limit inside a body under the body limit', async () => {
    const { status, json } = await gw.deploy('big', { runtime: 'nodejs20', code: 'x'.repeat(40 * 1024) });
    assert.equal(status, 413);
    assert.equal(json.error.code, 'PAYLOAD_TOO_LARGE');
  });
});

describe('get, list, delete', () => {
  test('lists functions by name', async () => {
    await gw.deploy('zeta', { runtime: 'nodejs20', code: NODE_CODE });
    await gw.deploy('alpha', { runtime: 'python3', code: 'def default(event, context):\n    return event\n' });
    const res = await gw.app.request('/v1/functions', { headers: auth });
    assert.equal(res.status, 200);
    const list = (await body(res)).functions;
    assert.deepEqual(list.map((f: { name: string }) => f.name), ['alpha', 'zeta']);
    assert.equal(list[0].spec.code.entry, 'handler.py');
  });

  test('404 for an unknown function on get, versions, version, delete', async () => {
    for (const [method, path] of [
      ['GET', '/v1/functions/nope'],
      ['GET', '/v1/functions/nope/versions'],
      ['GET', '/v1/functions/nope/versions/sha256:00'],
      ['DELETE', '/v1/functions/nope'],
    ] as const) {
      const res = await gw.app.request(path, { method, headers: auth });
      assert.equal(res.status, 404, path);
      const code = (await body(res)).error.code;
      assert.ok(code === 'FUNCTION_NOT_FOUND' || code === 'VERSION_NOT_FOUND', code);
    }
  });

  test('delete removes the function, its versions and unshared code, and announces it', async () => {
    const sub = new Redis(server.url);
    const events: FunctionEvent[] = [];
    sub.on('message', (_channel, message) => events.push(JSON.parse(message) as FunctionEvent));
    await sub.subscribe(gw.deps.registry.eventsChannel);
    try {
      const v1 = (await gw.deploy('gone', { runtime: 'nodejs20', code: NODE_CODE })).json;
      const v2 = (await gw.deploy('gone', { runtime: 'nodejs20', code: 'export default () => 2;' })).json;
      // Another function shares v1's code: the blob must survive the delete.
      await gw.deploy('keeper', { runtime: 'nodejs20', code: NODE_CODE });

      const res = await gw.app.request('/v1/functions/gone', { method: 'DELETE', headers: auth });
      assert.equal(res.status, 200);
      assert.deepEqual((await body(res)).versions.sort(), [v1.version, v2.version].sort());

      assert.equal((await gw.app.request('/v1/functions/gone', { headers: auth })).status, 404);
      assert.equal((await gw.app.request(`/v1/functions/gone/versions/${v1.version}`, { headers: auth })).status, 404);
      assert.equal((await gw.app.request('/v1/functions/gone', { method: 'DELETE', headers: auth })).status, 404);
      await assert.rejects(gw.deps.registry.getCode(v2.spec.code.digest), /missing/);
      assert.equal((await gw.deps.registry.getCode(v1.spec.code.digest)).toString(), NODE_CODE);
      const names = (await body(await gw.app.request('/v1/functions', { headers: auth }))).functions.map((f: { name: string }) => f.name);
      assert.deepEqual(names, ['keeper']);

      for (let i = 0; i < 50 && !events.some((e) => e.type === 'deleted'); i++) await new Promise((r) => setTimeout(r, 10));
      const deleted = events.find((e) => e.type === 'deleted');
      assert.ok(deleted && deleted.type === 'deleted');
      assert.equal(deleted.name, 'gone');
      assert.deepEqual(deleted.versions.sort(), [v1.version, v2.version].sort());
      assert.deepEqual(
        events.filter((e) => e.type === 'deployed').map((e) => e.name),
        ['gone', 'gone', 'keeper'],
      );
    } finally {
      sub.disconnect();
    }
  });

  test('a deleted function can be deployed again from scratch', async () => {
    await gw.deploy('phoenix', { runtime: 'nodejs20', code: NODE_CODE });
    await gw.app.request('/v1/functions/phoenix', { method: 'DELETE', headers: auth });
    const again = await gw.deploy('phoenix', { runtime: 'nodejs20', code: NODE_CODE });
    assert.equal(again.status, 201);
    assert.equal(again.json.createdVersion, true);
  });
});

describe('env values are secrets', () => {
  const SECRET = 'hunter2-s3cr3t-value-0123456789';
  const env = { DB_PASSWORD: SECRET, MODE: 'prod-mode-value' };

  test('no key or value anywhere in Redis holds an env value in clear', async () => {
    await gw.deploy('vault', { runtime: 'nodejs20', code: NODE_CODE, env });
    // A second version, so both the function's and each version's stored spec are covered.
    await gw.deploy('vault', { runtime: 'nodejs20', code: NODE_CODE, env, memoryMb: 256 });
    const everything = await dumpRedis(gw.redis);
    assert.ok(everything.some((line) => line.includes('"envSealed":"gcm1:')), 'no sealed spec stored');
    for (const value of Object.values(env)) {
      const hits = everything.filter((line) => line.includes(value) || line.includes(Buffer.from(value).toString('base64')));
      assert.deepEqual(hits, [], `${value} is stored in clear`);
    }
    // The registry (with the key) still reads them back.
    const fn = await gw.deps.registry.get('vault');
    assert.deepEqual(fn.spec.env, env);
    // The version id (shown to invokers) is no plain digest of the values either.
    assert.notEqual(fn.version, versionOf(fn.spec));
    const again = await gw.deploy('vault', { runtime: 'nodejs20', code: NODE_CODE, env, memoryMb: 256 });
    assert.equal(again.json.version, fn.version, 'an identical re-deploy keeps its version');
    const changed = await gw.deploy('vault', { runtime: 'nodejs20', code: NODE_CODE, env: { ...env, MODE: 'other' }, memoryMb: 256 });
    assert.notEqual(changed.json.version, fn.version, 'a changed value makes a new version');
  });

  test('the API shows env names with null values, and the values only with ?reveal=env', async () => {
    const deployed = await gw.deploy('vault', { runtime: 'nodejs20', code: NODE_CODE, env });
    const redacted = { DB_PASSWORD: null, MODE: null };
    assert.deepEqual(deployed.json.spec.env, redacted);
    const got = await body(await gw.app.request('/v1/functions/vault', { headers: auth }));
    assert.deepEqual(got.spec.env, redacted);
    const listed = await body(await gw.app.request('/v1/functions', { headers: auth }));
    assert.deepEqual(listed.functions[0].spec.env, redacted);
    const version = await body(await gw.app.request(`/v1/functions/vault/versions/${deployed.json.version}`, { headers: auth }));
    assert.deepEqual(version.spec.env, redacted);
    const versions = await gw.app.request('/v1/functions/vault/versions', { headers: auth });
    assert.ok(!(await versions.text()).includes(SECRET));

    assert.deepEqual((await body(await gw.app.request('/v1/functions/vault?reveal=env', { headers: auth }))).spec.env, env);
    assert.deepEqual((await body(await gw.app.request(`/v1/functions/vault/versions/${deployed.json.version}?reveal=env`, { headers: auth }))).spec.env, env);
    const bad = await gw.app.request('/v1/functions/vault?reveal=all', { headers: auth });
    assert.equal(bad.status, 400);
    assert.equal((await body(bad)).error.code, 'VALIDATION_FAILED');
    // Revealing needs the management key like every other read.
    assert.equal((await gw.app.request('/v1/functions/vault?reveal=env')).status, 401);
  });

  test('a wrong or missing key is SECRET_KEY_INVALID, not garbage', async () => {
    await gw.deploy('vault', { runtime: 'nodejs20', code: NODE_CODE, env });
    const wrong = new FunctionRegistry(gw.redis, gw.prefix, new SecretBox(SecretBox.generateKey()));
    await assert.rejects(wrong.get('vault'), (err: Error & { code?: string }) => err.code === 'SECRET_KEY_INVALID' && /not the one they were stored with/.test(err.message));
    const keyless = new FunctionRegistry(gw.redis, gw.prefix);
    await assert.rejects(keyless.get('vault'), (err: Error & { code?: string }) => err.code === 'SECRET_KEY_INVALID' && /FAASBOX_SECRET_KEY/.test(err.message));
    await assert.rejects(keyless.put({ ...(await gw.deps.registry.get('vault')).spec, name: 'other' }, Buffer.from(NODE_CODE)), /FAASBOX_SECRET_KEY/);
    // A function without env needs no key.
    await gw.deploy('plain', { runtime: 'nodejs20', code: NODE_CODE });
    assert.deepEqual((await keyless.get('plain')).spec.env, {});
    // Sealed under one function's name, it does not open as another's.
    const stored = JSON.parse((await gw.redis.hget(`${gw.prefix}:fn:vault`, 'spec')) as string) as { envSealed: string };
    await gw.redis.hset(`${gw.prefix}:fn:plain`, 'spec', JSON.stringify({ ...JSON.parse((await gw.redis.hget(`${gw.prefix}:fn:plain`, 'spec')) as string), envSealed: stored.envSealed }));
    await assert.rejects(gw.deps.registry.get('plain'), (err: Error & { code?: string }) => err.code === 'SECRET_KEY_INVALID');
  });
});

describe('management API keys', () => {
  const routes: [string, string, string | undefined][] = [
    ['GET', '/v1/functions', undefined],
    ['GET', '/v1/functions/x', undefined],
    ['GET', '/v1/functions/x/versions', undefined],
    ['DELETE', '/v1/functions/x', undefined],
    ['PUT', '/v1/functions/x', JSON.stringify({ runtime: 'nodejs20', code: NODE_CODE })],
  ];
  for (const [method, path, payload] of routes) {
    test(`${method} ${path}: 401 without a key, 403 with a wrong one, 401 when malformed`, async () => {
      const base: Record<string, string> = payload ? { 'Content-Type': 'application/json' } : {};
      const none = await gw.app.request(path, { method, headers: base, body: payload });
      assert.equal(none.status, 401);
      assert.equal((await body(none)).error.code, 'UNAUTHORIZED');
      const wrong = await gw.app.request(path, { method, headers: { ...base, Authorization: 'Bearer not-the-key' }, body: payload });
      assert.equal(wrong.status, 403);
      assert.equal((await body(wrong)).error.code, 'FORBIDDEN');
      const malformed = await gw.app.request(path, { method, headers: { ...base, Authorization: API_KEY }, body: payload });
      assert.equal(malformed.status, 401);
    });
  }

  test('a function invoke key is not a management key', async () => {
    await gw.deploy('keyed', { runtime: 'nodejs20', code: NODE_CODE, invokeKeys: ['invoke-key-0123456789'] });
    const res = await gw.app.request('/v1/functions/keyed', { headers: { Authorization: 'Bearer invoke-key-0123456789' } });
    assert.equal(res.status, 403);
  });
});
