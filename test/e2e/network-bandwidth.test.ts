/**
 * Bandwidth limits on the veth: a bridge container limited to 10 Mbit/s of download
 * fetches from the outside namespace at 8-11 Mbit/s; unlimited, at least 10x that. Rates
 * are measured inside the container (/proc/uptime around the transfer) and reported;
 * the bounds are the issue's, wide enough for a shared 2-core machine.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testEngine, type TestEngine } from '../support/engine.js';
import { endNetSuite, installNetGuard, type NetGuard } from '../support/net-guard.js';
import { makeOutside, type Outside } from '../support/outside.js';
import { HTTP_PORT, outsideServersCode } from '../support/outside-servers.js';
import type { NetworkSpec } from '../../worker/engine/spec.js';

const SUBNET = '198.51.100.0/24';
let guard: NetGuard;
let out: Outside;
let t: TestEngine;

before(async () => {
  guard = installNetGuard([SUBNET]);
  out = makeOutside();
  await out.serve(outsideServersCode(out.address));
  t = await testEngine('netbw', { network: { subnet: SUBNET } });
});
after(async () => {
  try {
    await t?.cleanup();
  } finally {
    out?.close();
    // Nothing of faasbox's is left: no bridge or veth, no table.
    endNetSuite(guard);
  }
});

/** Mbit/s of one download of `bytes` from the outside server, measured inside the container. */
async function download(network: NetworkSpec, bytes: number): Promise<{ mbps: number; got: number }> {
  // busybox nc stops reading once its stdin ends: the request's writer stays open (sleep)
  // and the result is printed as soon as the server has closed; the container is then deleted.
  const script = `a=$(cut -d' ' -f1 /proc/uptime); (printf 'GET /bulk?n=${bytes} HTTP/1.0\\r\\n\\r\\n'; sleep 120) | nc -w 20 ${out.address} ${HTTP_PORT} | wc -c | { read n; b=$(cut -d' ' -f1 /proc/uptime); echo "$a $b $n"; }`;
  const c = await t.engine.create({ rootfs: { layers: t.layers }, process: { args: ['/bin/sh', '-c', script] }, network }, { stdio: ['ignore', 'pipe', 'pipe'] });
  let o = '';
  c.stdout!.on('data', (d) => (o += d));
  c.stderr!.resume();
  c.start();
  await new Promise<void>((resolve) => {
    c.stdout!.on('data', () => o.includes('\n') && resolve());
    void c.wait().then(() => resolve());
  });
  await c.delete();
  const [a, b, n] = o.trim().split(/\s+/).map(Number);
  const secs = Math.max(0.01, b! - a!);
  return { mbps: (n! * 8) / secs / 1e6, got: n! };
}

test('10 Mbit/s of download is shaped to 8-11 Mbit/s; unlimited is at least 10x faster', async () => {
  const limited = await download({ mode: 'bridge', ingressMbps: 10 }, 3_000_000);
  const free = await download({ mode: 'bridge' }, 30_000_000);
  console.log(`# download: limited to 10 Mbit/s: ${limited.mbps.toFixed(2)} Mbit/s; unlimited: ${free.mbps.toFixed(0)} Mbit/s`);
  assert.ok(limited.got >= 3_000_000 && free.got >= 30_000_000, 'every byte arrived');
  assert.ok(limited.mbps >= 8 && limited.mbps <= 11, `limited: ${limited.mbps} Mbit/s`);
  assert.ok(free.mbps >= 10 * limited.mbps, `unlimited ${free.mbps} vs limited ${limited.mbps}`);
});
