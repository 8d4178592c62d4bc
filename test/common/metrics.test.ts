/** Observations recorded after the reply still show in a scrape that starts right after. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { afterReply, scrape } from '../../common/metrics.js';

test('an observation queued by afterReply is not made at once, and a scrape begun after it sees it', async () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'test_invocations_total', help: 'test', labelNames: ['function'], registers: [registry] });
  afterReply(() => counter.inc({ function: 'f' }));
  assert.doesNotMatch(await registry.metrics(), /test_invocations_total\{function="f"\}/, 'made off the reply path, not at once');
  afterReply(() => counter.inc({ function: 'f' }));
  assert.match(await scrape(registry), /test_invocations_total\{function="f"\} 2/);
});
