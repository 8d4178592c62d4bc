/**
 * Netlink against the real kernel: a bridge, a veth pair whose peer is created as eth0
 * directly inside a network namespace the test makes, its address, route and state,
 * read back with `ip`. No packet is sent.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, readlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Netlink } from '../../../../worker/engine/network/netlink.js';
import { inNetns, openNetns } from '../../../../worker/engine/network/netns.js';
import { parseIpv4 } from '../../../../worker/engine/network/cidr.js';

const suffix = randomBytes(3).toString('hex');
const ns = `fbxt-nl-${suffix}`;
const bridge = `fbxtb${suffix}`;
const veth = `fbxtv${suffix}`;
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

const ownNs = readlinkSync('/proc/thread-self/ns/net');
execFileSync('ip', ['netns', 'add', ns]);
const nl = Netlink.open();
after(() => {
  try {
    nl.deleteLink(veth);
    nl.deleteLink(bridge);
  } finally {
    nl.close();
    execFileSync('ip', ['netns', 'del', ns]);
  }
});

test('a bridge, then a veth whose peer is born as eth0 in the namespace, with address, route and up', () => {
  nl.createBridge(bridge, 1400);
  const br = nl.link(bridge);
  assert.ok(br && br.index > 0);
  assert.equal(br.mtu, 1400);
  nl.addAddress(br.index, parseIpv4('198.51.100.241')!, 29, bridge);
  nl.setUp(br.index, bridge);
  assert.match(ip('-br', 'addr', 'show', bridge), /198\.51\.100\.241\/29/);

  const fd = openNetns(`/run/netns/${ns}`);
  try {
    nl.createVeth({ hostName: veth, peerName: 'eth0', nsFd: fd, mtu: 1400, master: br.index });
  } finally {
    closeSync(fd);
  }
  assert.match(ip('link', 'show', veth), new RegExp(`master ${bridge}`));
  assert.doesNotMatch(ip('-br', 'link'), /eth0@/, 'the peer was not made in the host namespace');

  const inside = inNetns(`/run/netns/${ns}`, () => Netlink.open());
  try {
    const eth0 = inside.link('eth0');
    assert.ok(eth0, 'eth0 exists inside');
    assert.equal(eth0.mtu, 1400);
    inside.addAddress(eth0.index, parseIpv4('198.51.100.242')!, 29, 'eth0');
    inside.setUp(eth0.index, 'eth0');
    inside.addDefaultRoute(parseIpv4('198.51.100.241')!, eth0.index, 'default');
  } finally {
    inside.close();
  }
  assert.match(ip('-n', ns, '-br', 'addr', 'show', 'eth0'), /198\.51\.100\.242\/29/);
  assert.match(ip('-n', ns, 'route'), /default via 198\.51\.100\.241 dev eth0/);
  assert.match(ip('-n', ns, 'link', 'show', 'eth0'), /UP/);
  // The worker's thread came back: its own links are visible again.
  assert.ok(nl.link(bridge), 'still in the host namespace');
  assert.equal(readlinkSync('/proc/thread-self/ns/net'), ownNs, 'the thread is back in the worker\'s namespace');

  assert.equal(nl.deleteLink(veth), true);
  assert.doesNotMatch(ip('-n', ns, '-br', 'link'), /eth0/, 'the peer went with the host end');
  assert.equal(nl.deleteLink(veth), false, 'a second delete finds nothing');
});

test('kernel errors come back typed, with the errno and what was asked', () => {
  assert.throws(() => nl.createBridge(bridge, 1400), (e: Error & { errnoName?: string }) => e.errnoName === 'EEXIST' && e.message.includes(bridge));
  assert.equal(nl.link(`fbxtn${suffix}`), undefined);
});

