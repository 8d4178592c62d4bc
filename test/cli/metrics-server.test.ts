/** A standalone worker's metrics server (cli/metrics-server.ts): the gateway's guard, JSON errors, promtool-clean output. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { serveMetrics } from '../../cli/metrics-server.js';
import { MetricsGuard } from '../../gateway/metrics-auth.js';

test('401 JSON without a token, 200 and valid metrics with it; 404 JSON elsewhere', async () => {
  const registry = new Registry();
  new Counter({ name: 'faasbox_worker_invocations_total', help: 'test', labelNames: ['function'], registers: [registry] }).inc({ function: 'f' });
  const { server, port } = await serveMetrics(registry, new MetricsGuard(['worker-metrics-token-0123456789']), 0, '127.0.0.1');
  try {
    const url = `http://127.0.0.1:${port}`;
    const none = await fetch(`${url}/metrics`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    const wrong = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 403);
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer worker-metrics-token-0123456789' } });
    assert.equal(ok.status, 200);
    const text = await ok.text();
    assert.match(text, /faasbox_worker_invocations_total\{function="f"\} 1/);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    const elsewhere = await fetch(`${url}/`);
    assert.equal(elsewhere.status, 404);
    assert.equal(((await elsewhere.json()) as { error: { code: string } }).error.code, 'ROUTE_NOT_FOUND');
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('a guard without tokens refuses every scrape unless public', () => {
  const closed = new MetricsGuard([undefined, '']);
  assert.equal(closed.hasTokens, false);
  assert.throws(() => closed.check('Bearer anything'), { code: 'FORBIDDEN' });
  assert.doesNotThrow(() => new MetricsGuard([], true).check(undefined));
});
