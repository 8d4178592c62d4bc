/**
 * Bridge resources under churn and after a crash: 200 bridge containers created and
 * deleted concurrently never share an address and leave no lease, veth or set element;
 * a worker SIGKILLed with 20 live bridge containers leaves nothing once the next engine
 * on its state dir has run gc. No packet is sent (the guard checks that too).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testEngine, killPid, type TestEngine } from '../support/engine.js';
import { installNetGuard, type NetGuard } from '../support/net-guard.js';
import type { ContainerSpec } from '../../worker/engine/spec.js';

const SUBNET = '198.51.100.0/24';
const network = { subnet: SUBNET, deny: [], dns: [] };
let guard: NetGuard;
let t: TestEngine;

before(async () => {
  guard = installNetGuard([SUBNET]);
  t = await testEngine('netgc', { network });
});
after(async () => {
  try {
    await t?.cleanup();
  } finally {
    try {
      guard?.check();
    } finally {
      guard?.remove();
    }
  }
  assert.deepEqual(readdirSync('/sys/class/net').filter((n) => n.startsWith('fbx')), [], 'no faasbox links left');
  assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), /fbx/, 'no faasbox nft table left');
});

const sleeper = (): ContainerSpec => ({ rootfs: { layers: t.layers }, process: { args: ['/bin/sleep', '600'] }, network: { mode: 'bridge' } });
const net = () => t.engine.network();
const ourVeths = (): string[] => readdirSync('/sys/class/net').filter((n) => n.startsWith(net().names.vethPrefix));
const elements = (): string => execFileSync('nft', ['list', 'table', 'inet', net().names.table], { encoding: 'utf8' }).match(/set open \{[^}]*\}/)![0];

test('200 bridge containers created and deleted concurrently: distinct addresses, nothing leaked', async () => {
  const created = await Promise.all(Array.from({ length: 200 }, () => t.engine.create(sleeper())));
  try {
    const addrs = created.map((c) => c.address!);
    assert.equal(new Set(addrs).size, 200, 'no address handed out twice');
    assert.equal(net().ipam.list().length, 200);
    assert.equal(ourVeths().length, 200);
    assert.match(elements(), /elements = \{/);
    // Set elements over nfnetlink, not an `nft` fork per container: one batch each, every address in the open set.
    assert.equal(elements().match(/\d+\.\d+\.\d+\.\d+/g)?.length, 200, 'every container is in the open set');
    assert.ok(net().sets.batches >= 200, `each create added its elements in a batch of its own (${net().sets.batches})`);
  } finally {
    await Promise.all(created.map((c) => c.delete()));
  }
  assert.equal(net().ipam.list().length, 0, 'no lease left');
  assert.deepEqual(ourVeths(), [], 'no veth left');
  assert.doesNotMatch(elements(), /elements/, 'no set element left');
});

test('a worker SIGKILLed with 20 live bridge containers leaves nothing after the next gc', async () => {
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const engineJs = path.join(dist, 'worker/engine/engine.js');
  const code = `
import { Engine } from ${JSON.stringify(engineJs)};
const e = await Engine.open({ stateDir: ${JSON.stringify(t.engine.stateDir)}, cgroupRoot: ${JSON.stringify(`/faasbox-test-netgc-${process.pid}`)}, seeds: 0, network: ${JSON.stringify(network)} });
const cs = await Promise.all(Array.from({ length: 20 }, () => e.create({ rootfs: { layers: ${JSON.stringify(t.layers)} }, process: { args: ['/bin/sleep', '600'] }, network: { mode: 'bridge' } })));
for (const c of cs) c.start();
console.log('ready ' + cs.map((c) => c.address).join(','));
setInterval(() => {}, 1000);
`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out);
    });
    child.once('exit', (c) => reject(new Error(`worker exited (${c}) before its containers were up`)));
  });
  assert.match(line, /^ready /);
  assert.equal(ourVeths().length, 20);
  killPid(child.pid!);
  await new Promise((r) => child.once('exit', r));
  const report = await t.engine.gc();
  assert.equal(report.network?.leases.length, 20, 'every lease of the dead worker freed');
  assert.equal(net().ipam.list().length, 0);
  assert.deepEqual(ourVeths(), [], 'no veth left');
  assert.doesNotMatch(elements(), /elements/, 'no set element left');
});
