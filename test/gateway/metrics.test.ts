/**
 * The gateway's /metrics: a bearer token is needed (the metrics token or the management
 * key) unless made public on purpose; a deleted function's series leave it, whether it was
 * deleted through this gateway or through another (heard by the 'deleted' event).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, test } from 'node:test';
import { startGateway } from '../../gateway/main.js';
import { redisForFile } from '../support/redis.js';
import { eventually } from '../support/eventually.js';
import { API_KEY, auth, NODE_CODE, testGateway, type TestGateway } from './harness.js';

const server = redisForFile();
const METRICS_TOKEN = 'scraper-token-0123456789abcdef';
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function errorOf(res: Response): Promise<string> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  return ((await res.json()) as { error: { code: string } }).error.code;
}

/** promtool's real problems (it exits 1 on lint warnings too, as platform.test.ts notes). */
function promtoolProblems(text: string): string[] {
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.error, undefined, 'promtool (Debian package prometheus) must be installed');
  return `${check.stdout}${check.stderr}`.split('\n').filter((l) => l.trim() && !/counter metrics should have "_total" suffix|no help text|should not include/.test(l));
}

describe('metrics auth', () => {
  test('401 JSON without a token, 403 with a wrong one; the metrics token and the API key both read them', async () => {
    gw = await testGateway(server, { metricsToken: METRICS_TOKEN });
    await gw.deploy('secretive', { runtime: 'nodejs20', code: NODE_CODE });
    const none = await gw.app.request('/metrics');
    assert.equal(none.status, 401);
    assert.equal(await errorOf(none), 'UNAUTHORIZED');
    const wrong = await gw.app.request('/metrics', { headers: { Authorization: 'Bearer not-the-token' } });
    assert.equal(wrong.status, 403);
    assert.equal(await errorOf(wrong), 'FORBIDDEN');
    const malformed = await gw.app.request('/metrics', { headers: { Authorization: METRICS_TOKEN } });
    assert.equal(malformed.status, 401);
    for (const token of [METRICS_TOKEN, API_KEY]) {
      const res = await gw.app.request('/metrics', { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, /faasbox_gateway_http_requests_total/);
      assert.deepEqual(promtoolProblems(text), []);
    }
    // Probes stay open.
    assert.equal((await gw.app.request('/healthz')).status, 200);
  });

  test('metricsPublic opts out explicitly', async () => {
    gw = await testGateway(server, { metricsPublic: true });
    assert.equal((await gw.app.request('/metrics')).status, 200);
  });
});

describe('a deleted function leaves /metrics', () => {
  test('deleted through this gateway: its series go at once', async () => {
    gw = await testGateway(server);
    await gw.startWorker();
    for (const name of ['doomed', 'kept']) {
      await gw.deploy(name, { runtime: 'nodejs20', code: NODE_CODE });
      assert.equal((await gw.invoke(name, { behave: 'ok' })).status, 200);
      assert.equal((await gw.invoke(name, { behave: 'throw' })).status, 502);
    }
    const scrape = async () => (await gw!.app.request('/metrics', { headers: auth })).text();
    await eventually(async () => /faasbox_invocation_duration_seconds_count\{function="doomed",mode="sync",outcome="FUNCTION_ERROR"/.test(await scrape()), 5000, 'the observations');
    assert.equal((await gw.app.request('/v1/functions/doomed', { method: 'DELETE', headers: auth })).status, 200);
    const text = await scrape();
    assert.ok(!text.includes('doomed'), 'the deleted name is still listed');
    assert.match(text, /faasbox_invocation_duration_seconds_bucket\{le="0.001",function="kept"/);
    assert.deepEqual(promtoolProblems(text), []);
  });

  test('deleted through another gateway: this one forgets it on the event', async () => {
    const prefix = `test-metrics-${process.pid}-${Date.now()}`;
    const running = await startGateway({ apiKey: API_KEY, redisUrl: server.url, prefix, port: 0 });
    gw = await testGateway(server, { prefix });
    await gw.startWorker();
    try {
      const headers = { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' };
      assert.equal((await fetch(`${running.url}/v1/functions/elsewhere`, { method: 'PUT', headers, body: JSON.stringify({ runtime: 'nodejs20', code: NODE_CODE }) })).status, 201);
      assert.equal((await fetch(`${running.url}/v1/functions/elsewhere/invoke`, { method: 'POST', headers, body: '{"behave":"ok"}' })).status, 200);
      const scrape = async () => (await fetch(`${running.url}/metrics`, { headers })).text();
      await eventually(async () => (await scrape()).includes('function="elsewhere"'), 5000, 'the observation');
      // The other gateway (the harness's app) deletes it.
      assert.equal((await gw.app.request('/v1/functions/elsewhere', { method: 'DELETE', headers: auth })).status, 200);
      await eventually(async () => !(await scrape()).includes('elsewhere'), 5000, 'the deleted function to leave the other gateway\'s /metrics');
    } finally {
      await running.close();
    }
  });
});
