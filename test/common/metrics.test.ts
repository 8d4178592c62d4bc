/** Observations recorded after the reply still show in a scrape that starts right after. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterReply, forgetFunction, scrape } from '../../common/metrics.js';

test('an observation queued by afterReply is not made at once, and a scrape begun after it sees it', async () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'test_invocations_total', help: 'test', labelNames: ['function'], registers: [registry] });
  afterReply(() => counter.inc({ function: 'f' }));
  assert.doesNotMatch(await registry.metrics(), /test_invocations_total\{function="f"\}/, 'made off the reply path, not at once');
  afterReply(() => counter.inc({ function: 'f' }));
  assert.match(await scrape(registry), /test_invocations_total\{function="f"\} 2/);
});

test('forgetFunction removes every series of one function, in counters, gauges and histograms, and no other', async () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'test_runs_total', help: 'test', labelNames: ['function', 'outcome'], registers: [registry] });
  const gauge = new Gauge({ name: 'test_peak_bytes', help: 'test', labelNames: ['function'], registers: [registry] });
  const histogram = new Histogram({ name: 'test_seconds', help: 'test', labelNames: ['function', 'mode'], buckets: [0.1, 1], registers: [registry] });
  const unlabelled = new Counter({ name: 'test_other_total', help: 'test', registers: [registry] });
  for (const fn of ['gone', 'kept']) {
    counter.inc({ function: fn, outcome: 'ok' });
    counter.inc({ function: fn, outcome: 'TIMEOUT' });
    gauge.set({ function: fn }, 5);
    histogram.observe({ function: fn, mode: 'sync' }, 0.5);
    histogram.observe({ function: fn, mode: 'async' }, 2);
  }
  unlabelled.inc();
  await forgetFunction(registry, 'gone');
  const text = await registry.metrics();
  assert.doesNotMatch(text, /gone/);
  assert.match(text, /test_runs_total\{function="kept",outcome="TIMEOUT"\} 1/);
  assert.match(text, /test_peak_bytes\{function="kept"\} 5/);
  assert.match(text, /test_seconds_count\{function="kept",mode="async"\} 1/);
  assert.match(text, /test_other_total 1/);
});
