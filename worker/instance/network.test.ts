import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerNetwork } from './network.js';

test('a function\'s network becomes the container\'s; none when absent', () => {
  assert.deepEqual(containerNetwork({ network: { mode: 'bridge', egress: ['203.0.113.0/24:80'], ingressMbps: 10 } }), { mode: 'bridge', egress: ['203.0.113.0/24:80'], ingressMbps: 10 });
  assert.deepEqual(containerNetwork({}), { mode: 'none' });
  assert.deepEqual(containerNetwork({ network: { mode: 'none' } }), { mode: 'none' });
});
