/** The gateway as a real HTTP server (startGateway), health and readiness, unknown routes. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { ImageRequestClient } from '../../common/image-requests.js';
import { InvocationClient } from '../../common/invocation-client.js';
import { ConcurrencyLimiter } from '../../common/concurrency.js';
import { InvocationStore } from '../../common/invocations.js';
import { FunctionRegistry } from '../../common/registry.js';
import { HostPolicy } from '../../common/delivery/host-policy.js';
import { createApp } from '../../gateway/app.js';
import { gatewayConfig, gatewayConfigFromEnv } from '../../gateway/config.js';
import { startGateway } from '../../gateway/main.js';
import { redisForFile } from '../support/redis.js';
import { API_KEY, NODE_CODE, testGateway } from './harness.js';

const server = redisForFile();

describe('startGateway', () => {
  test('serves the API over HTTP and closes cleanly', async () => {
    const prefix = `test-${process.pid}-${Date.now()}`;
    const running = await startGateway({ apiKey: API_KEY, redisUrl: server.url, prefix, port: 0 });
    // A stand-in worker on the same prefix, so a sync invoke over real HTTP completes.
    const helper = await testGateway(server, { prefix });
    await helper.startWorker();
    try {
      assert.match(running.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.deepEqual(await (await fetch(`${running.url}/healthz`)).json(), { status: 'ok' });
      assert.equal((await fetch(`${running.url}/readyz`)).status, 200);

      const deploy = await fetch(`${running.url}/v1/functions/web`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ runtime: 'nodejs20', code: NODE_CODE, public: true }),
      });
      assert.equal(deploy.status, 201);
      const inv = await fetch(`${running.url}/v1/functions/web/invoke`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ behave: 'ok', over: 'http' }),
      });
      assert.equal(inv.status, 200);
      assert.deepEqual((await inv.json()).echo, { behave: 'ok', over: 'http' });
      assert.ok(inv.headers.get('server-timing'));

      const metrics = await (await fetch(`${running.url}/metrics`, { headers: { Authorization: `Bearer ${API_KEY}` } })).text();
      assert.match(metrics, /process_cpu_seconds_total/, 'default process metrics are exported');
      assert.match(metrics, /faasbox_invocation_duration_seconds_count\{function="web"/);
    } finally {
      await helper.close();
      await running.close();
    }
    await assert.rejects(fetch(`${running.url}/healthz`), 'the port is closed after close()');
  });

  test('refuses to start without an API key', async () => {
    await assert.rejects(startGateway({ apiKey: '', redisUrl: server.url }), /API key/);
  });

  test('configuration from the environment', () => {
    const c = gatewayConfigFromEnv({ FAASBOX_PORT: '9090', FAASBOX_API_KEY: 'k', FAASBOX_REDIS_URL: 'redis://127.0.0.1:1', FAASBOX_PREFIX: 'p' });
    assert.equal(c.port, 9090);
    assert.equal(c.apiKey, 'k');
    assert.equal(c.redisUrl, 'redis://127.0.0.1:1');
    assert.equal(c.prefix, 'p');
    assert.equal(gatewayConfigFromEnv({ FAASBOX_API_KEY: 'k' }).port, 8080);
    assert.throws(() => gatewayConfigFromEnv({ FAASBOX_PORT: 'eighty', FAASBOX_API_KEY: 'k' }), /FAASBOX_PORT/);
    assert.throws(() => gatewayConfigFromEnv({}), /API key/);
  });
});

describe('health and routing', () => {
  test('unknown routes and methods answer 404 JSON', async () => {
    const gw = await testGateway(server);
    try {
      for (const [method, path] of [
        ['GET', '/nope'],
        ['GET', '/v1'],
        ['POST', '/v1/functions/x'],
        ['PATCH', '/v1/functions/x'],
        ['GET', '/v1/functions/x/invoke'],
      ]) {
        const res = await gw.app.request(path as string, { method: method as string });
        assert.equal(res.status, 404, `${method} ${path}`);
        assert.deepEqual(await res.json(), { error: { code: 'ROUTE_NOT_FOUND', message: `no route for ${method} ${path}` } });
      }
    } finally {
      await gw.close();
    }
  });

  test('readyz answers 503 UNAVAILABLE while Redis is unreachable, healthz stays 200', async () => {
    // A client to a port nothing listens on: the gateway's process is up, its Redis is not.
    const dead = new Redis({ port: 1, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 50 });
    dead.on('error', () => {});
    const live = new Redis(server.url);
    const queue = await InvocationClient.open({ connection: live, prefix: 'test-readyz' });
    try {
      const app = createApp({
        config: gatewayConfig({ apiKey: API_KEY }),
        redis: dead,
        registry: new FunctionRegistry(dead, 'x'),
        invocations: new InvocationStore(dead, 'x'),
        queue,
        concurrency: new ConcurrencyLimiter(dead, 'x'),
        metrics: new Registry(),
        callbacks: new HostPolicy(),
        // Never asked here (no image request is made): it opens no connection until then.
        images: new ImageRequestClient(dead, 'x'),
      });
      dead.connect().catch(() => {});
      const started = Date.now();
      const res = await app.request('/readyz');
      assert.equal(res.status, 503);
      assert.equal((await res.json()).error.code, 'UNAVAILABLE');
      assert.ok(Date.now() - started < 3000, 'the probe answers promptly');
      assert.equal((await app.request('/healthz')).status, 200);
    } finally {
      await queue.close();
      live.disconnect();
      dead.disconnect();
    }
  });
});
