/**
 * Bridge resources under churn and after a crash: 200 bridge containers created and
 * deleted concurrently never share an address and leave no lease, veth or set element;
 * a worker SIGKILLed with 20 live bridge containers leaves nothing once the next engine
 * on its state dir has run gc; bridge seeds (parked inits with eth0 made ahead) hold leases
 * of their own, go only to bridge creates, and give everything back when drained. No packet
 * is sent (the guard checks that too).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { bridgeMac } from '../../worker/engine/network/names.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testEngine, killPid, type TestEngine } from '../support/engine.js';
import { endNetSuite, installNetGuard, type NetGuard } from '../support/net-guard.js';
import { eventually } from '../support/eventually.js';
import { parseIpv4 } from '../../worker/engine/network/cidr.js';
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
    // Nothing of faasbox's is left: no bridge or veth, no table.
    endNetSuite(guard);
  }
});

const sleeper = (): ContainerSpec => ({ rootfs: { layers: t.layers }, process: { args: ['/bin/sleep', '600'] }, network: { mode: 'bridge' } });
const net = () => t.engine.network();
const ourVeths = (): string[] => readdirSync('/sys/class/net').filter((n) => n.startsWith(net().names.vethPrefix));
const elements = (): string => execFileSync('nft', ['list', 'table', 'inet', net().names.table], { encoding: 'utf8' }).match(/set open \{[^}]*\}/)![0];

test('200 bridge containers created and deleted concurrently: distinct addresses, nothing leaked', async () => {
  const mac = () => readFileSync(`/sys/class/net/${net().names.bridge}/address`, 'utf8').trim();
  const fixed = [...bridgeMac(t.engine.stateDir)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  assert.equal(mac(), fixed, "the bridge has its own MAC, not its lowest port's");
  const created = await Promise.all(Array.from({ length: 200 }, () => t.engine.create(sleeper())));
  try {
    assert.equal(mac(), fixed, "200 ports joined: the gateway's MAC, cached by every container, did not change");
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
  // What is left is the engine's parked bridge seeds' (their eth0 made ahead), and only while they are parked.
  const seeds = t.engine.seeds?.parked.filter((s) => s.network === 'bridge') ?? [];
  assert.deepEqual(net().ipam.list().map((l) => l.id).sort(), seeds.filter((s) => s.attachment).map((s) => s.name).sort(), 'no lease left but the parked seeds\'');
  assert.equal(ourVeths().length, seeds.filter((s) => s.attachment).length);
  await t.engine.seeds?.drain();
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

test('bridge seeds: parked with eth0 and a lease of their own, taken only by bridge creates, kept by gc while their engine lives, released when drained', async (ctx) => {
  if (!t.engine.seeds) return ctx.skip('no seeds on this host (they need cgroup v1)');
  const seeds = t.engine.seeds;
  const bridgeSeeds = () => seeds.parked.filter((s) => s.network === 'bridge' && s.attachment);
  // Two creates of each mode: the seed pool makes seeds like them from then on.
  for (let i = 0; i < 2; i++) {
    for (const mode of ['none', 'bridge'] as const) await (await t.engine.create({ ...sleeper(), network: { mode } })).delete();
  }
  await eventually(() => bridgeSeeds().length === seeds.size, 10_000, 'parked bridge seeds with their network');
  const parked = bridgeSeeds();
  const addresses = parked.map((s) => s.attachment!.address);
  assert.deepEqual(net().ipam.list().map((l) => l.id).sort(), parked.map((s) => s.name).sort(), 'each holds a lease under its own name');
  assert.equal((await t.engine.gc()).network?.leases.length ?? 0, 0, "gc leaves a live engine's seeds their leases");
  assert.equal(bridgeSeeds().length, seeds.size);

  // A none create never takes one: loopback only.
  const none = await t.engine.create({ ...sleeper(), network: { mode: 'none' } });
  assert.equal(none.address, undefined);
  assert.equal(bridgeSeeds().length, seeds.size, 'the bridge seeds are still parked');
  await none.delete();
  // A bridge create takes one: the seed's address, its lease now the container's.
  const c = await t.engine.create({ ...sleeper(), network: { mode: 'bridge', egress: ['203.0.113.0/26:80'] } });
  try {
    assert.ok(addresses.includes(parseIpv4(c.address!)!), `${c.address} was a parked seed's`);
    await eventually(() => net().ipam.list().find((l) => l.address === parseIpv4(c.address!))?.id === c.id, 5000, 'its lease renamed to the container');
    assert.match(execFileSync('nft', ['list', 'set', 'inet', net().names.table, 'allowport'], { encoding: 'utf8' }), new RegExp(`${c.address!.replace(/\./g, '\\.')} \\. 203\\.0\\.113\\.0/26 \\. 80`), 'its allowlist is in the sets');
  } finally {
    await c.delete();
  }
  await seeds.drain();
  assert.deepEqual(net().ipam.list(), [], 'drained seeds give their leases back');
  assert.deepEqual(ourVeths(), [], 'and their veths');
});
