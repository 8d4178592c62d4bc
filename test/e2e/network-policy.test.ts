/**
 * Bridge mode end to end, on the engine: a container reaches a server in the test's
 * outside namespace; an allowlist narrows that and mode none has no way out; and from a
 * bridge container every way to the host (Redis on 127.0.0.1 and on the bridge address,
 * a gateway-like port, the host's other addresses), to cloud metadata, to a denied CIDR
 * and to another container fails, while DNS goes to the configured resolver only.
 * Addresses: containers 198.51.100.0/24, outside 203.0.113.0/24 (the host's uplink is
 * on 192.0.2.0/24 here); the net guard counts anything from the containers heading for
 * a real interface and fails the file if it saw one.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, networkInterfaces } from 'node:os';
import path from 'node:path';
import { testEngine, type TestEngine } from '../support/engine.js';
import { endNetSuite, installNetGuard, type NetGuard } from '../support/net-guard.js';
import { makeOutside, type Outside } from '../support/outside.js';
import { HTTP_PORT, outsideServersCode } from '../support/outside-servers.js';
import { freePort, stopChild } from '../../cli/redis.js';
import type { ContainerSpec, NetworkSpec } from '../../worker/engine/spec.js';

const SUBNET = '198.51.100.0/24';
const BRIDGE_IP = '198.51.100.1';
const METADATA = '169.254.169.254';
const DENIED = '203.0.113.130';

let guard: NetGuard;
let out: Outside;
let t: TestEngine;
let redis: ChildProcess;
let redisPort: number;
let redisDir: string;
let hostServer: http.Server;
let hostPort: number;

before(async () => {
  guard = installNetGuard([SUBNET]);
  out = makeOutside({ extra: [METADATA, DENIED] });
  await out.serve(outsideServersCode(out.address));
  t = await testEngine('netpolicy', { network: { subnet: SUBNET, deny: ['203.0.113.128/25'], dns: [out.address] } });
  // The host's Redis, bound to loopback and to the bridge's own address.
  redisDir = mkdtempSync(path.join(tmpdir(), 'faasbox-test-netredis-'));
  redisPort = await freePort();
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', `127.0.0.1 ${BRIDGE_IP}`, '--save', '', '--appendonly', 'no', '--dir', redisDir], { stdio: 'ignore' });
  // A stand-in for the gateway: listening on every host address.
  hostServer = http.createServer((_, res) => res.end('host-ok'));
  hostPort = await new Promise<number>((r) => hostServer.listen(0, '0.0.0.0', () => r((hostServer.address() as { port: number }).port)));
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('redis-cli', ['-h', BRIDGE_IP, '-p', String(redisPort), 'ping'], { stdio: 'pipe', timeout: 2000 });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
});

after(async () => {
  try {
    await t?.cleanup();
  } finally {
    hostServer?.close();
    if (redis) await stopChild(redis, 'SIGKILL');
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
    out?.close();
    // Nothing of faasbox's is left: no bridge or veth, no table.
    endNetSuite(guard);
  }
});

function spec(network: NetworkSpec | undefined, script: string): ContainerSpec {
  return { rootfs: { layers: t.layers }, process: { args: ['/bin/sh', '-c', script] }, ...(network ? { network } : {}) };
}

/** Runs script in a container; its stdout. */
async function sh(network: NetworkSpec | undefined, script: string): Promise<string> {
  const c = await t.engine.create(spec(network, script), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  c.stdout!.on('data', (d) => (stdout += d));
  c.stderr!.resume();
  c.start();
  await c.wait();
  await c.delete();
  return stdout;
}

/** A TCP connect from inside: "open" or "closed" (busybox nc, 2 s connect timeout). */
const connect = (host: string, port: number): string => `if nc -w 2 ${host} ${port} </dev/null >/dev/null 2>&1; then echo ${host}:${port}=open; else echo ${host}:${port}=closed; fi`;
/** An HTTP GET from inside through busybox nc (the image's static wget crashes here); FAILED when nothing came back. */
const fetchUrl = (url: string): string => {
  const u = new URL(url);
  return `r=$(printf 'GET ${u.pathname} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${u.hostname} ${u.port} 2>/dev/null); case "$r" in *outside-ok*) echo "$r";; *) echo FAILED;; esac`;
};

test('a bridge container reaches the outside namespace\'s HTTP server (masqueraded)', async () => {
  const o = await sh({ mode: 'bridge' }, fetchUrl(`http://${out.address}:${HTTP_PORT}/`));
  assert.match(o, new RegExp(`outside-ok ${out.address.replace(/\./g, '\\.')}`));
});

test('an allowlist that excludes the server blocks it; one that names it lets it through', async () => {
  const excluded = await sh({ mode: 'bridge', egress: ['203.0.113.64/26', `${out.address}/32:9999`] }, fetchUrl(`http://${out.address}:${HTTP_PORT}/`));
  assert.match(excluded, /FAILED/);
  const named = await sh({ mode: 'bridge', egress: [`${out.address}/32:${HTTP_PORT}`] }, fetchUrl(`http://${out.address}:${HTTP_PORT}/`));
  assert.match(named, /outside-ok/);
});

test('mode none has no way out: only lo, no route', async () => {
  const o = await sh({ mode: 'none' }, `${fetchUrl(`http://${out.address}:${HTTP_PORT}/`)}; cat /proc/net/dev`);
  assert.match(o, /FAILED/);
  assert.doesNotMatch(o, /eth0/);
});

test('from a bridge container the host, metadata, denied CIDRs and other containers are all unreachable', async () => {
  // Another running container, listening on 8080.
  const other = await t.engine.create(spec({ mode: 'bridge' }, `nc -l -p ${HTTP_PORT}`), { stdio: ['ignore', 'ignore', 'ignore'] });
  other.start();
  const hostAddrs = Object.values(networkInterfaces()).flat().filter((a) => a && a.family === 'IPv4' && !a.internal && a.address !== BRIDGE_IP).map((a) => a!.address);
  assert.ok(hostAddrs.length > 0);
  try {
    const targets: [string, number][] = [
      ['127.0.0.1', redisPort],
      [BRIDGE_IP, redisPort],
      [BRIDGE_IP, hostPort],
      ...hostAddrs.map((a): [string, number] => [a, hostPort]),
      [METADATA, HTTP_PORT],
      [DENIED, HTTP_PORT],
      [other.address!, HTTP_PORT],
    ];
    // Controls: each target answers when reached from where it should be.
    assert.match(execFileSync('redis-cli', ['-h', BRIDGE_IP, '-p', String(redisPort), 'ping'], { encoding: 'utf8', timeout: 5000 }), /PONG|DENIED/);
    assert.match(out.exec(['busybox', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${METADATA} ${HTTP_PORT}`]), /outside-ok/);
    const o = await sh({ mode: 'bridge' }, [...targets.map(([h, p]) => connect(h, p)), connect(out.address, HTTP_PORT)].join('; '));
    for (const [h, p] of targets) assert.match(o, new RegExp(`${h.replace(/\./g, '\\.')}:${p}=closed`), `${h}:${p} must be unreachable:\n${o}`);
    assert.match(o, new RegExp(`${out.address.replace(/\./g, '\\.')}:${HTTP_PORT}=open`), 'while the outside is reachable');
  } finally {
    await other.delete();
  }
});

test('inside: only lo and eth0, one route via the bridge, resolv.conf from configuration, DNS through the outside resolver', async () => {
  const o = await sh({ mode: 'bridge' }, 'cat /proc/net/dev; echo ROUTES; cat /proc/net/route; echo RESOLV; cat /etc/resolv.conf; echo HOSTS; cat /etc/hosts; echo LOOKUP; nslookup svc.test');
  const ifaces = o.split('ROUTES')[0]!.split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean).sort();
  assert.deepEqual(ifaces, ['eth0', 'lo']);
  const routes = o.split('ROUTES')[1]!.split('RESOLV')[0]!.trim().split('\n').slice(1);
  assert.ok(routes.every((r) => r.startsWith('eth0')), routes.join('\n'));
  assert.ok(routes.some((r) => r.split(/\s+/)[1] === '00000000'), 'a default route');
  const resolv = o.split('RESOLV')[1]!.split('HOSTS')[0]!;
  assert.match(resolv, new RegExp(`nameserver ${out.address.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(resolv, /10\.255\.255\.53|127\.0\.0\.53/, 'not the host\'s resolvers');
  assert.match(o.split('LOOKUP')[1]!, new RegExp(`Address: ${out.address.replace(/\./g, '\\.')}`));
});

test('a bridge spec with a bad egress entry or bandwidth is refused naming the field', async () => {
  await assert.rejects(t.engine.create(spec({ mode: 'bridge', egress: ['10.0.0.0/33'] }, 'true')), /network\.egress\[0\]/);
  await assert.rejects(t.engine.create(spec({ mode: 'bridge', egress: ['10.0.0.0/8:70000'] }, 'true')), /network\.egress\[0\]/);
  await assert.rejects(t.engine.create(spec({ mode: 'bridge', ingressMbps: -1 }, 'true')), /network\.ingressMbps/);
  await assert.rejects(t.engine.create(spec({ mode: 'overlay' } as unknown as NetworkSpec, 'true')), /network\.mode/);
});
