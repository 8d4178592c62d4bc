import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDeploy } from './function-spec.js';
import { isEgressEntry } from './network-spec.js';

const base = { runtime: 'nodejs20', code: 'export default () => 1' };

test('egress entries: CIDR without host bits, optional port 1-65535', () => {
  for (const ok of ['203.0.113.0/24', '203.0.113.7/32:443', '0.0.0.0/0']) assert.ok(isEgressEntry(ok), ok);
  for (const bad of ['203.0.113.1/24', '203.0.113.0/33', '203.0.113.0/24:0', '203.0.113.0/24:65536', '256.0.0.0/8', 'example.com', '10.0.0.0']) assert.ok(!isEgressEntry(bad), bad);
});

test('a deploy keeps network only when given, and names a bad entry', () => {
  assert.equal('network' in parseDeploy('f', base).spec, false, 'absent: the spec (and its version) as before');
  const s = parseDeploy('f', { ...base, network: { mode: 'bridge', egress: ['203.0.113.0/24:80'], ingressMbps: 10 } }).spec;
  assert.deepEqual(s.network, { mode: 'bridge', egress: ['203.0.113.0/24:80'], ingressMbps: 10 });
  const bad = (network: unknown, re: RegExp) =>
    assert.throws(() => parseDeploy('f', { ...base, network }), (e: Error & { code?: string }) => e.code === 'VALIDATION_FAILED' && re.test(JSON.stringify({ m: e.message, d: (e as unknown as { details?: unknown }).details })));
  bad({ mode: 'bridge', egress: ['203.0.113.0/24', '10.0.0.1/8'] }, /network\.egress\.1|network","egress",1/);
  bad({ mode: 'overlay' }, /network/);
  bad({ mode: 'bridge', egressMbps: 0 }, /egressMbps/);
  bad({ mode: 'none', egress: [] }, /network/);
});
