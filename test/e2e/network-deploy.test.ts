/**
 * Bridge mode through the deploy path: a function deployed with `network: {mode:
 * "bridge"}` runs in a container of its own with eth0 on the worker's bridge and an
 * address of its subnet, reused warm; a
 * function without `network` keeps loopback only. No packet leaves the containers here;
 * the net guard counts anything that would go out of a real uplink all the same.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { endNetSuite, installNetGuard, type NetGuard } from '../support/net-guard.js';
import { startStack, type TestStack } from '../support/stack.js';

const SUBNET = '198.51.100.0/24';
let guard: NetGuard;
let s: TestStack;

before(async () => {
  guard = installNetGuard([SUBNET]);
  s = await startStack('netdeploy', { network: { subnet: SUBNET, deny: [], dns: [] } });
});
after(async () => {
  try {
    await s?.close();
  } finally {
    // Nothing of faasbox's is left: no bridge or veth, no table.
    endNetSuite(guard);
  }
});

const code = `import { networkInterfaces } from 'node:os';
export default () => Object.fromEntries(Object.entries(networkInterfaces()).map(([n, a]) => [n, a.filter((x) => x.family === 'IPv4').map((x) => x.address)]));`;

test('a function deployed with network bridge gets eth0 with an address of the subnet, in a container of its own; one without gets loopback only', async () => {
  assert.equal((await s.deploy('bridged', { runtime: 'nodejs20', code, network: { mode: 'bridge' } })).status, 201);
  assert.equal((await s.deploy('plain', { runtime: 'nodejs20', code })).status, 201);
  const first = await s.invoke('bridged');
  assert.equal(first.status, 200, first.text);
  assert.deepEqual(Object.keys(first.json).sort(), ['eth0', 'lo']);
  const [addr] = first.json.eth0 as string[];
  assert.match(addr!, /^198\.51\.100\.\d+$/);
  assert.notEqual(addr, '198.51.100.1', 'the bridge keeps the first address');
  // Cold or specialised (a bridge stem cell made after the deploy, if ready in time): network-pool.test.ts tells them apart.
  assert.match(first.headers.get('x-cold-start') ?? '', /^(cold|specialized)$/);
  const again = await s.invoke('bridged');
  assert.equal(again.headers.get('x-cold-start'), 'warm');
  assert.deepEqual(again.json, first.json, 'the same container, the same address');
  const plain = await s.invoke('plain');
  assert.equal(plain.status, 200, plain.text);
  assert.deepEqual(Object.keys(plain.json), ['lo']);
});
