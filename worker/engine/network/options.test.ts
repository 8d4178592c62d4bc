import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseSettings, settingsFromEnv } from './options.js';
import { parseEgress, parseCidr } from './cidr.js';
import { Ipam } from './ipam.js';
import { rulesetScript } from './nft.js';

const routes = [{ iface: 'eth0', base: 0, prefix: 0 }, { iface: 'eth0', base: parseCidr('192.0.2.0/24').base, prefix: 24 }];

test('a subnet overlapping a host route is refused, naming the route', () => {
  assert.throws(() => parseSettings({ subnet: '192.0.2.0/25' }, 'fbx1', routes), /FAASBOX_NET_SUBNET: 192\.0\.2\.0\/25 overlaps the host's route 192\.0\.2\.0\/24 dev eth0/);
  assert.doesNotThrow(() => parseSettings({ subnet: '198.51.100.0/24' }, 'fbx1', routes), 'the default route does not count');
  assert.doesNotThrow(() => parseSettings({ subnet: '192.0.2.0/24' }, 'eth0', routes), 'nor the bridge\'s own route');
});

test('a deny list or DNS entry that does not parse is refused, naming the entry', () => {
  assert.throws(() => parseSettings({ subnet: '198.51.100.0/24', deny: ['10.0.0.0/8', '10.1.2.3/8'] }, 'b', routes), /FAASBOX_NET_DENY: entry "10\.1\.2\.3\/8" has host bits set/);
  assert.throws(() => parseSettings({ subnet: '198.51.100.0/24', deny: ['nope'] }, 'b', routes), /FAASBOX_NET_DENY: entry "nope"/);
  assert.throws(() => parseSettings({ subnet: '198.51.100.0/24', dns: ['1.2.3'] }, 'b', routes), /FAASBOX_NET_DNS: entry "1\.2\.3"/);
  assert.equal(settingsFromEnv({}), undefined);
  assert.deepEqual(settingsFromEnv({ FAASBOX_NET_SUBNET: '10.88.0.0/16', FAASBOX_NET_DENY: '10.0.0.0/8, 172.16.0.0/12' })?.deny, ['10.0.0.0/8', '172.16.0.0/12']);
});

test('egress entries: CIDR or CIDR:port', () => {
  assert.deepEqual(parseEgress('203.0.113.0/24:443'), { cidr: parseCidr('203.0.113.0/24'), port: 443 });
  assert.throws(() => parseEgress('203.0.113.0/24:0'), /port/);
  assert.throws(() => parseEgress('203.0.113.0/33'), /prefix/);
});

test('leases are exclusive files; released addresses come back only after the others', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-ipam-'));
  try {
    const a = new Ipam(dir, parseCidr('198.51.100.0/29'));
    const b = new Ipam(dir, parseCidr('198.51.100.0/29')); // a second engine on the same state dir
    assert.equal(a.capacity, 5);
    const got = [a.allocate('c1'), b.allocate('c2'), a.allocate('c3'), b.allocate('c4'), a.allocate('c5')].map((l) => l.address);
    assert.equal(new Set(got).size, 5, 'no address handed out twice');
    assert.throws(() => a.allocate('c6'), /no free address left in 198\.51\.100\.0\/29/);
    a.release(got[0]!);
    assert.equal(a.allocate('c7').address, got[0]);
    assert.equal(readdirSync(a.dir).length, 5);
    assert.deepEqual(a.list().map((l) => l.id).sort(), ['c2', 'c3', 'c4', 'c5', 'c7']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lease rewrite is atomic; one left half done by a crash is swept once old; a lease not yet written reads as pending', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-ipam-'));
  try {
    const ipam = new Ipam(dir, parseCidr('198.51.100.0/29'));
    const l = ipam.allocate('seed-1-2-3');
    await ipam.update(l.address, 'c1', ['203.0.113.0/26:80']);
    assert.deepEqual(ipam.list(), [{ address: l.address, id: 'c1', egress: ['203.0.113.0/26:80'] }]);
    assert.deepEqual(readdirSync(ipam.dir), ['198.51.100.2'], 'no rewrite file left');
    writeFileSync(path.join(ipam.dir, '198.51.100.2.new'), '{"id":"c1"}');
    assert.deepEqual(ipam.sweepRewrites(60_000), [], 'a fresh one may be under way');
    assert.deepEqual(ipam.sweepRewrites(60_000, Date.now() + 120_000), ['198.51.100.2.new']);
    writeFileSync(path.join(ipam.dir, '198.51.100.3'), '');
    assert.equal(ipam.list().find((x) => x.address === l.address + 1)?.pending, true, 'gc gives it no element: closed, never open');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the ruleset drops bridge traffic in input, and carries the members that hold leases', () => {
  const t = { table: 'fbx-x', bridge: 'fbxx', subnet: parseCidr('198.51.100.0/24'), deny: [parseCidr('10.0.0.0/8')], dns: [] };
  const s = rulesetScript(t, [{ address: parseCidr('198.51.100.7').base }]);
  assert.match(s, /hook input[^]*iifname "fbxx" counter drop/);
  assert.match(s, /169\.254\.0\.0\/16, 10\.0\.0\.0\/8/);
  assert.match(s, /add element inet fbx-x open \{ 198\.51\.100\.7 \}/);
});
