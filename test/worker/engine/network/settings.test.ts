/**
 * The bad input for bridge networking, against the real host: a subnet that
 * overlaps one of the host's routes, or a deny list that does not parse, makes the
 * worker refuse to start with a message naming the setting (and the route); a host
 * without what bridge mode needs (here: no `nft` on the PATH) leaves bridge creates
 * failing with NETWORK_UNAVAILABLE, naming nftables, while mode none keeps working, and
 * no bridge is left behind. No address is put on any host link.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startWorker } from '../../../../worker/main.js';
import { hostRoutes } from '../../../../worker/engine/network/host.js';
import { formatCidr } from '../../../../worker/engine/network/cidr.js';
import { NetworkConfigError } from '../../../../worker/engine/network/errors.js';
import { EngineError } from '../../../../worker/engine/errors.js';
import { runToEnd, testEngine } from '../../../support/engine.js';

const work = mkdtempSync(path.join(tmpdir(), 'faasbox-test-netsettings-'));
after(() => rmSync(work, { recursive: true, force: true }));
const fbxLinks = () => readdirSync('/sys/class/net').filter((n) => n.startsWith('fbx'));

/** A worker that fails before it touches Redis (nothing listens on port 1): the engine is opened first. */
const start = (name: string, network: { subnet: string; deny?: string[] }) =>
  startWorker({ redisUrl: 'redis://127.0.0.1:1', prefix: `netsettings-${name}`, stateDir: path.join(work, name), budgetMb: 256, pools: false, cgroupRoot: `/faasbox-test-netsettings-${name}-${process.pid}`, network });

const route = hostRoutes().find((r) => r.prefix > 0 && r.prefix <= 30);

test('a subnet overlapping a host route: the worker refuses to start, naming the setting and the route', { skip: !route && 'this host has no route but the default one to overlap' }, async () => {
  const before = fbxLinks();
  const overlapping = formatCidr({ base: route!.base, prefix: Math.min(30, route!.prefix + 1) });
  await assert.rejects(start('overlap', { subnet: overlapping }), (err: Error) => {
    assert.ok(err instanceof NetworkConfigError, String(err));
    assert.match(err.message, new RegExp(`^FAASBOX_NET_SUBNET: ${overlapping.replace(/\./g, '\\.')} overlaps the host's route ${formatCidr(route!).replace(/\./g, '\\.')} dev ${route!.iface}`));
    return true;
  });
  assert.deepEqual(fbxLinks(), before, 'no bridge made');
});

test('a deny list that does not parse: the worker refuses to start, naming the entry', async () => {
  await assert.rejects(start('deny', { subnet: '198.51.100.0/24', deny: ['10.0.0.0/8', '10.0.0.0/33'] }), /^NetworkConfigError: FAASBOX_NET_DENY: entry "10\.0\.0\.0\/33" has a prefix length outside 0-32/);
  await assert.rejects(start('deny2', { subnet: '198.51.100.0/24', deny: ['not-a-cidr'] }), /FAASBOX_NET_DENY: entry "not-a-cidr"/);
  assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), /fbx-/, 'no table made');
});

test('no nftables on the host: bridge creates fail with NETWORK_UNAVAILABLE naming it, none works, no bridge is left', async () => {
  const before = fbxLinks();
  const path0 = process.env.PATH;
  // What a host without Debian's nftables looks like to the engine: `nft` is not found.
  // Every other sbin tool stays reachable, through links of this test's own.
  const sbin = path.join(work, 'sbin-without-nft');
  mkdirSync(sbin);
  for (const name of readdirSync('/usr/sbin')) if (name !== 'nft') symlinkSync(path.join('/usr/sbin', name), path.join(sbin, name));
  process.env.PATH = [sbin, '/usr/local/bin', '/usr/bin', '/bin'].join(':');
  let t: Awaited<ReturnType<typeof testEngine>> | undefined;
  try {
    t = await testEngine('netsettings', { network: { subnet: '198.51.100.0/24' } });
  } finally {
    process.env.PATH = path0;
  }
  try {
    assert.equal(t.engine.hasNetwork, false);
    assert.deepEqual(fbxLinks(), before, 'the bridge made before the table failed is gone again');
    await assert.rejects(t.engine.create({ rootfs: { layers: t.layers }, process: { args: ['/bin/true'] }, network: { mode: 'bridge' } }), (err: Error) => {
      assert.ok(err instanceof EngineError && err.code === 'NETWORK_UNAVAILABLE', String(err));
      assert.match(err.message, /cannot install nftables table inet fbx-[0-9a-f]+: nft -f failed: nft: spawn nft ENOENT \(is Debian's nftables installed\?\)/);
      assert.match(err.message, /containers with network mode "none" still run/);
      return true;
    });
    const none = await runToEnd(t.engine, { rootfs: { layers: t.layers }, process: { args: ['/bin/sh', '-c', "echo ok=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ')"] } });
    assert.equal(none.result.exitCode, 0, none.stderr);
    assert.equal(none.out.ok, 'lo');
  } finally {
    await t.cleanup();
  }
});
