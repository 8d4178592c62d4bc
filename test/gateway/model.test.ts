/**
 * The shared model in common/: the deploy schema and its normalization (pure), the error
 * table, and the invocation store's bounds against real Redis.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { ERROR_CODES, FaasboxError, FunctionError, ValidationError } from '../../common/errors.js';
import { canonicalJson, cpuForMemory, parseDeploy, versionOf } from '../../common/function-spec.js';
import { InvocationStore } from '../../common/invocations.js';
import { invocationJobOptions, invocationResultSchema } from '../../common/queue.js';
import { HTTP_STATUS } from '../../gateway/errors.js';
import { redisClientForFile } from '../support/redis.js';

describe('function spec', () => {
  test('version ids depend on content, not on key order or defaults spelled out', () => {
    const a = parseDeploy('f', { runtime: 'nodejs20', code: 'x', memoryMb: 128 }).spec;
    const b = parseDeploy('f', { memoryMb: 128, code: 'x', runtime: 'nodejs20', handler: 'default', env: {} }).spec;
    assert.equal(versionOf(a), versionOf(b));
    const c = parseDeploy('f', { runtime: 'nodejs20', code: 'x', env: { A: '1' } }).spec;
    assert.notEqual(versionOf(a), versionOf(c));
    const d = parseDeploy('f', { runtime: 'nodejs20', code: 'y' }).spec;
    assert.notEqual(versionOf(a), versionOf(d));
  });

  test('a reserved or malformed env name is refused with a message that says what is wrong with it', () => {
    for (const key of ['FAASBOX_WORKER', 'LD_PRELOAD', 'node_options']) {
      assert.throws(
        () => parseDeploy('f', { runtime: 'nodejs20', code: 'x', env: { [key]: '1' } }),
        (err: ValidationError) => {
          assert.ok(err instanceof ValidationError);
          assert.deepEqual(err.issues.map((i) => i.path), [`env.${key}`]);
          assert.match(err.issues[0]!.message, /environment variable name is reserved for the platform \(reserved: names starting with FAASBOX_, /);
          assert.match(err.message, new RegExp(`^invalid function spec: env\\.${key}: this environment variable name is reserved`));
          return true;
        },
        key,
      );
    }
    assert.throws(
      () => parseDeploy('f', { runtime: 'nodejs20', code: 'x', env: { '1ABC': '1' } }),
      (err: ValidationError) => /env\.1ABC: environment variable names start with a letter/.test(err.message),
    );
  });

  test('canonical JSON sorts keys at every level', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: 2, c: [{ f: 1, e: 2 }] } }), '{"a":{"c":[{"e":2,"f":1}],"d":2},"b":1}');
  });

  test('cpu follows Lambda: 1769 MB is one vCPU', () => {
    assert.equal(cpuForMemory(1769), 1000);
    assert.equal(cpuForMemory(3538), 2000);
    assert.equal(cpuForMemory(64), 36);
  });

  test('invoke keys are stored as sorted, de-duplicated sha256 digests', () => {
    const { spec } = parseDeploy('f', { runtime: 'nodejs20', code: 'x', invokeKeys: ['b'.repeat(16), 'a'.repeat(16), 'a'.repeat(16)] });
    assert.equal(spec.invokeKeyDigests.length, 2);
    assert.ok(spec.invokeKeyDigests.every((d) => /^[0-9a-f]{64}$/.test(d)));
    assert.deepEqual([...spec.invokeKeyDigests].sort(), spec.invokeKeyDigests);
  });

  test('validation errors name every offending path', () => {
    try {
      parseDeploy('f', { runtime: 'java', memoryMb: 1, timeoutMs: -1 });
      assert.fail('expected a ValidationError');
    } catch (err) {
      assert.ok(err instanceof ValidationError);
      const paths = err.issues.map((i) => i.path).sort();
      assert.deepEqual(paths, ['memoryMb', 'runtime', 'timeoutMs']);
    }
  });
});

describe('errors', () => {
  test('every error code has an HTTP status, and function outcomes have distinct ones', () => {
    for (const code of ERROR_CODES) assert.ok(HTTP_STATUS[code] >= 400, code);
    const outcomes = ['FUNCTION_ERROR', 'TIMEOUT', 'OOM_KILLED', 'RUNTIME_CRASHED', 'NO_CAPACITY'] as const;
    assert.equal(new Set(outcomes.map((c) => HTTP_STATUS[c])).size, outcomes.length);
  });

  test('errors survive the trip through the queue as data', () => {
    const info = new FunctionError('boom', 'Error: boom\n  at x').toInfo();
    const json = JSON.parse(JSON.stringify(info));
    const back = FaasboxError.fromInfo(json);
    assert.equal(back.code, 'FUNCTION_ERROR');
    assert.equal(back.message, 'boom');
    assert.equal(FaasboxError.fromInfo({ code: 'WHAT' as never, message: 'm' }).code, 'INTERNAL');
  });
});

describe('queue contract', () => {
  test('sync jobs are removed on completion and not retried; async jobs are retried and kept', () => {
    const sync = invocationJobOptions({ invocationId: 'i1', mode: 'sync' });
    assert.equal(sync.jobId, 'i1');
    assert.equal(sync.removeOnComplete, true);
    assert.equal(sync.attempts, 1);
    const async = invocationJobOptions({ invocationId: 'i2', mode: 'async' });
    assert.equal(async.jobId, 'i2');
    assert.ok((async.attempts ?? 1) > 1);
    assert.ok(async.backoff);
    assert.equal(typeof async.removeOnComplete, 'object');
  });

  test('the result schema accepts what a worker returns and rejects junk', () => {
    const ok = { ok: true, value: 1, startKind: 'warm', timings: { queueMs: 1, initMs: 0, execMs: 2, totalMs: 3 } };
    assert.ok(invocationResultSchema.safeParse(ok).success);
    assert.ok(!invocationResultSchema.safeParse({ ...ok, startKind: 'lukewarm' }).success);
    assert.ok(!invocationResultSchema.safeParse({ ...ok, ok: false, error: { code: 'NOT_A_CODE', message: '' } }).success);
    assert.ok(!invocationResultSchema.safeParse({ ...ok, http: { status: 42, headers: {}, body: '' } }).success);
  });
});

describe('invocation store', () => {
  let redis: Redis;
  redisClientForFile((client) => (redis = client));

  test('lifecycle: queued, running, succeeded; with a TTL on every key', async () => {
    const store = new InvocationStore(redis, 'test-store', 60);
    await store.create({ id: 'a', function: 'f', version: 'v', mode: 'async' });
    assert.equal((await store.get('a'))?.status, 'queued');
    await store.start({ id: 'a', function: 'f', version: 'v', mode: 'async' }, 2);
    await store.appendOutput('a', 'stdout', 'hello ');
    await store.appendOutput('a', 'stdout', Buffer.from('world'));
    assert.ok(
      await store.complete('a', { ok: true, value: { x: 1 }, startKind: 'specialized', timings: { queueMs: 1, initMs: 2, execMs: 3, totalMs: 6 } }),
    );
    const rec = await store.get('a');
    assert.equal(rec?.status, 'succeeded');
    assert.equal(rec?.attempts, 2);
    assert.deepEqual(rec?.result, { x: 1 });
    assert.equal(rec?.startKind, 'specialized');
    assert.equal(rec?.stdout, 'hello world');
    for (const key of ['test-store:inv:a', 'test-store:inv:a:stdout']) {
      const ttl = await redis.ttl(key);
      assert.ok(ttl > 0 && ttl <= 60, `${key} ttl ${ttl}`);
    }
  });

  test('output is capped per stream and flagged as truncated', async () => {
    const store = new InvocationStore(redis, 'test-store');
    await store.create({ id: 'b', function: 'f', version: 'v', mode: 'sync' });
    assert.equal(await store.appendOutput('b', 'stderr', 'x'.repeat(10), 16), 10);
    assert.equal(await store.appendOutput('b', 'stderr', 'y'.repeat(10), 16), 6);
    assert.equal(await store.appendOutput('b', 'stderr', 'z', 16), 0);
    const rec = await store.get('b');
    assert.equal(rec?.stderr, 'x'.repeat(10) + 'y'.repeat(6));
    assert.equal(rec?.stderrTruncated, true);
    assert.equal(rec?.stdoutTruncated, false);
  });

  test('a sync record is made by the worker that starts it, with its identity', async () => {
    const store = new InvocationStore(redis, 'test-store', 60);
    const createdAt = new Date('2026-01-02T03:04:05.000Z');
    await store.start({ id: 's', function: 'f', version: 'v1', mode: 'sync', createdAt }, 1);
    const rec = await store.get('s');
    assert.equal(rec?.status, 'running');
    assert.equal(rec?.mode, 'sync');
    assert.equal(rec?.function, 'f');
    assert.equal(rec?.version, 'v1');
    assert.equal(rec?.createdAt, createdAt.toISOString());
    assert.ok(rec?.startedAt);
    const ttl = await redis.ttl('test-store:inv:s');
    assert.ok(ttl > 0 && ttl <= 60, `ttl ${ttl}`);
  });

  test('a late worker cannot resurrect a record that does not exist', async () => {
    const store = new InvocationStore(redis, 'test-store');
    assert.equal(await store.complete('ghost', { ok: true, value: 1, startKind: 'warm', timings: { queueMs: 0, initMs: 0, execMs: 0, totalMs: 0 } }), false);
    assert.equal(await store.appendOutput('ghost', 'stdout', 'x'), -1);
    assert.equal(await store.get('ghost'), undefined);
    assert.equal(await redis.exists('test-store:inv:ghost', 'test-store:inv:ghost:stdout'), 0);
  });
});
