/**
 * POST/GET /v1/images against real Redis: validation naming the field, the management key,
 * no live worker, and the request/reply with the workers' real side (worker/images.ts's
 * ImageRequestServer over its own store). The puller behind it is a scripted stand-in
 * (the real one is pull.ts, tested against a registry by its own tests): it answers a
 * digest or throws the puller's typed errors, whose codes must arrive as the HTTP status
 * the error table gives them. Credentials reach the puller as given and never appear in
 * anything Redis saw (MONITOR).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { DigestMismatchError, ImageNotFoundError, ImageTooLargeError, RegistryUnauthorizedError } from '../../common/errors.js';
import { workersKey } from '../../common/keys.js';
import { setTag } from '../../worker/engine/image/import.js';
import type { PullImage, PullOptions } from '../../worker/engine/image/pull-types.js';
import type { ImageRecord } from '../../worker/engine/image/record.js';
import { ImageRequestServer } from '../../worker/images.js';
import { tar } from '../support/archives.js';
import { TestStore } from '../support/image-store.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { auth, jsonHeaders, TEST_SECRETS, testGateway, type TestGateway } from './harness.js';

let server: TestRedis;
let gw: TestGateway;
before(async () => {
  server = await startRedis();
  gw = await testGateway(server);
});
after(async () => {
  await gw?.close();
  await server?.stop();
});

async function post(body: unknown, headers: Record<string, string> = jsonHeaders): Promise<{ status: number; json: any }> {
  const res = await gw.app.request('/v1/images', { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

describe('validation and auth', () => {
  const bad: [string, unknown, string][] = [
    ['no ref', {}, 'ref'],
    ['uppercase path', { ref: '127.0.0.1:5000/App:1' }, 'ref'],
    ['a short digest', { ref: 'reg.test/app@sha256:abc' }, 'ref'],
    ['spaces', { ref: 'reg.test/app :1' }, 'ref'],
    ['a platform without an architecture', { ref: 'reg.test/app:1', platform: 'linux' }, 'platform'],
    ['creds without a username', { ref: 'reg.test/app:1', creds: { username: '', password: 'p' } }, 'creds.username'],
    ['an unknown field', { ref: 'reg.test/app:1', insecure: true }, '(root)'],
  ];
  for (const [what, body, field] of bad) {
    test(`400 VALIDATION_FAILED naming ${field}: ${what}`, async () => {
      const r = await post(body);
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'VALIDATION_FAILED');
      assert.ok(r.json.error.details.issues.some((i: { path: string }) => i.path === field), JSON.stringify(r.json.error.details));
    });
  }

  test('401 without the management key, for POST and GET', async () => {
    assert.equal((await post({ ref: 'reg.test/app:1' }, { 'Content-Type': 'application/json' })).status, 401);
    assert.equal((await gw.app.request('/v1/images')).status, 401);
  });

  test('no live worker: 503 UNAVAILABLE', async () => {
    const r = await post({ ref: 'reg.test/app:1' });
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, 'UNAVAILABLE');
    assert.match(r.json.error.message, /no live worker/);
  });
});

describe('with workers', () => {
  const stores = [new TestStore('faasbox-gw-images-a-'), new TestStore('faasbox-gw-images-b-')];
  const servers: ImageRequestServer[] = [];
  const connections: Redis[] = [];
  const calls: { worker: string; ref: string; opts: PullOptions }[] = [];
  let script: (worker: string, ref: string) => Promise<ImageRecord> | ImageRecord = () => {
    throw new Error('unscripted');
  };
  let shared: ImageRecord;
  let own: ImageRecord;

  /** A puller that records its call and does what the test scripted. */
  const stand = (worker: string): (() => Promise<PullImage>) => async () => async (_dir, ref, opts = {}) => {
    calls.push({ worker, ref, opts });
    const record = await script(worker, ref);
    return { ref, manifestDigest: record.manifestDigest, record, transferredBytes: 0 };
  };

  before(async () => {
    const layer = (s: TestStore, text: string) => s.layer(tar([{ name: 'f', data: text }]));
    shared = stores[0]!.record([layer(stores[0]!, 'shared')]);
    stores[1]!.record([layer(stores[1]!, 'shared')]);
    own = stores[1]!.record([layer(stores[1]!, 'only on b')]);
    setTag(stores[0]!.imagesDir, 'reg.test/shared:1', shared.manifestDigest);
    setTag(stores[1]!.imagesDir, 'reg.test/shared:latest', shared.manifestDigest);
    setTag(stores[1]!.imagesDir, 'reg.test/own:1', own.manifestDigest);
    for (const [i, name] of ['wa', 'wb'].entries()) {
      const conn = new Redis(server.url);
      connections.push(conn);
      const s = new ImageRequestServer({ redis: conn, prefix: gw.prefix, workerId: name, stateDir: stores[i]!.stateDir, secrets: TEST_SECRETS, puller: stand(name) });
      await s.start();
      servers.push(s);
      await gw.redis.hset(workersKey(gw.prefix), name, JSON.stringify({ id: name, at: Date.now() }));
    }
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const c of connections) c.disconnect();
    for (const s of stores) s.remove();
  });

  /** Keeps the stand-in workers' reports fresh for the request about to be made. */
  const fresh = async () => {
    for (const name of ['wa', 'wb']) await gw.redis.hset(workersKey(gw.prefix), name, JSON.stringify({ id: name, at: Date.now() }));
  };

  test('GET lists every worker\'s images, merged by digest with the workers holding each', async () => {
    await fresh();
    const res = await gw.app.request('/v1/images', { headers: auth });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { images: { digest: string; tags: string[]; workers: string[] }[]; workers: { id: string; ok: boolean }[] };
    assert.deepEqual(body.workers, [{ id: 'wa', ok: true }, { id: 'wb', ok: true }]);
    const byDigest = Object.fromEntries(body.images.map((i) => [i.digest, i]));
    assert.deepEqual(byDigest[shared.manifestDigest]!.workers, ['wa', 'wb']);
    assert.deepEqual(byDigest[shared.manifestDigest]!.tags, ['reg.test/shared:1', 'reg.test/shared:latest']);
    assert.deepEqual(byDigest[own.manifestDigest]!.workers, ['wb']);
    assert.equal(body.images.length, 2);
  });

  test('POST pulls on every live worker and answers the digest; creds reach the puller, never Redis in clear', async () => {
    await fresh();
    calls.length = 0;
    script = () => shared;
    const monitor = new Redis(server.url);
    const seen: string[] = [];
    const m = await monitor.monitor();
    m.on('monitor', (_time: string, args: string[]) => seen.push(args.join(' ')));
    try {
      const r = await post({ ref: 'reg.test/shared:1', creds: { username: 'alice', password: 'pa55-word-secret' }, platform: 'linux/arm64/v8' });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json, { ref: 'reg.test/shared:1', digest: shared.manifestDigest, workers: [{ id: 'wa', ok: true }, { id: 'wb', ok: true }] });
      assert.deepEqual(calls.map((c) => c.worker).sort(), ['wa', 'wb']);
      for (const c of calls) {
        assert.deepEqual(c.opts.creds, { username: 'alice', password: 'pa55-word-secret' });
        assert.deepEqual(c.opts.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
      }
      assert.ok(seen.some((s) => s.includes('image-requests')), 'the request went through this Redis');
      assert.ok(!seen.some((s) => s.includes('pa55-word-secret') || s.includes('alice')), 'the creds crossed Redis sealed');
    } finally {
      m.disconnect();
      monitor.disconnect();
    }
  });

  const failures: [string, () => Error, number, string][] = [
    ['the registry has no such image', () => new ImageNotFoundError('reg.test/x:1', 'the registry has no manifest for it'), 404, 'IMAGE_NOT_FOUND'],
    ['the registry refuses the creds', () => new RegistryUnauthorizedError('reg.test', 'HTTP 401'), 403, 'REGISTRY_UNAUTHORIZED'],
    ['a blob hashes to another digest', () => new DigestMismatchError('blob sha256:aa', 'sha256:aa', 'sha256:bb'), 502, 'DIGEST_MISMATCH'],
    ['a layer past the bounds', () => new ImageTooLargeError('layer too large', 'maxUnpackedBytes', 1), 422, 'IMAGE_TOO_LARGE'],
  ];
  for (const [what, error, status, code] of failures) {
    test(`${status} ${code} when ${what} on one worker; the answer says which workers failed`, async () => {
      await fresh();
      script = (worker) => {
        if (worker === 'wb') throw error();
        return shared;
      };
      const r = await post({ ref: 'reg.test/x:1' });
      assert.equal(r.status, status, JSON.stringify(r.json));
      assert.equal(r.json.error.code, code);
      assert.match(r.json.error.message, /1 of 2 workers could not pull reg\.test\/x:1; worker wb/);
      assert.deepEqual(
        r.json.error.details.workers.map((w: { id: string; ok: boolean; error?: { code: string } }) => [w.id, w.ok, w.error?.code]),
        [['wa', true, undefined], ['wb', false, code]],
      );
    });
  }

  test('an error that is not the puller\'s own: INTERNAL with its message withheld', async () => {
    await fresh();
    script = () => {
      throw new Error('connect ECONNREFUSED https://user:hunter2@reg.test');
    };
    const r = await post({ ref: 'reg.test/x:1' });
    assert.equal(r.status, 500);
    assert.equal(r.json.error.code, 'INTERNAL');
    assert.doesNotMatch(JSON.stringify(r.json), /hunter2/);
  });

  test('a worker that reports but does not answer: UNAVAILABLE for it after the timeout', async () => {
    await fresh();
    await gw.redis.hset(workersKey(gw.prefix), 'ghost', JSON.stringify({ id: 'ghost', at: Date.now() }));
    try {
      script = () => shared;
      const r = await post({ ref: 'reg.test/shared:1' });
      assert.equal(r.status, 503, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'UNAVAILABLE');
      assert.match(r.json.error.message, /worker ghost did not answer/);
    } finally {
      await gw.redis.hdel(workersKey(gw.prefix), 'ghost');
    }
  });
});
