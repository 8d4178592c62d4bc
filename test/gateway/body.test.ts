/**
 * Request bodies at the edge (gateway/body.ts), against real Redis and BullMQ: a body
 * nested past the depth limit is a 400 saying so, sync or async, and nothing of it
 * reaches Redis: no record, no job.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { redisForFile } from '../support/redis.js';
import { dumpRedis } from '../support/redis-dump.js';
import { jsonHeaders, NODE_CODE, testGateway, type TestGateway } from './harness.js';

const server = redisForFile();
let gw: TestGateway;

const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

describe('JSON nesting depth', () => {
  beforeEach(async () => {
    gw = await testGateway(server, { maxJsonDepth: 64 });
    await gw.deploy('echo', { runtime: 'nodejs20', code: NODE_CODE });
    await gw.startWorker();
  });
  afterEach(async () => {
    await gw.close();
  });

  for (const [mode, query] of [['sync', ''], ['async', '?async=true']] as const) {
    test(`${mode}: 5,000 levels is 400 VALIDATION_FAILED naming the limit; no record or job is created`, async () => {
      const before = (await dumpRedis(gw.redis)).filter((l) => l.startsWith(gw.prefix)).sort();
      for (const levels of [65, 5000]) {
        const res = await gw.app.request(`/v1/functions/echo/invoke${query}`, { method: 'POST', headers: jsonHeaders, body: nested(levels) });
        assert.equal(res.status, 400, `${levels} levels`);
        const err = ((await res.json()) as { error: { code: string; message: string } }).error;
        assert.equal(err.code, 'VALIDATION_FAILED');
        assert.match(err.message, /more than 64 levels deep/);
      }
      const after = (await dumpRedis(gw.redis)).filter((l) => l.startsWith(gw.prefix)).sort();
      assert.deepEqual(after, before, 'the refused invocations left something in Redis');
      // At the limit, it runs.
      const ok = await gw.app.request(`/v1/functions/echo/invoke${query}`, { method: 'POST', headers: jsonHeaders, body: JSON.stringify({ behave: 'ok', deep: JSON.parse(nested(63)) }) });
      assert.equal(ok.status, mode === 'sync' ? 200 : 202, await ok.clone().text());
    });
  }

  test('a deploy body past the limit is refused too', async () => {
    const res = await gw.app.request('/v1/functions/deep', { method: 'PUT', headers: jsonHeaders, body: `{"runtime":"nodejs20","code":"x","env":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}` });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /more than 64 levels deep/);
  });
});
