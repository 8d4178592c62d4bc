/**
 * Bridge stem cells through the whole stack: once a bridge function is deployed, the
 * worker keeps a stem cell with its veth, address and DNS files made ahead (and no
 * egress at all), and the function's first invocation is specialised from it, taking the
 * function's allowlist on the way; it reaches the test's outside namespace, and its
 * record and the metrics carry the bytes it moved. A `none` function keeps loopback
 * only. The net guard counts anything that would leave through a real uplink.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { endNetSuite, installNetGuard, type NetGuard } from '../support/net-guard.js';
import { makeOutside, type Outside } from '../support/outside.js';
import { HTTP_PORT, outsideServersCode } from '../support/outside-servers.js';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';

const SUBNET = '198.51.100.0/24';
let guard: NetGuard;
let out: Outside;
let s: TestStack;

before(async () => {
  guard = installNetGuard([SUBNET]);
  out = makeOutside();
  await out.serve(outsideServersCode(out.address));
  s = await startStack('netpool', { network: { subnet: SUBNET, deny: [], dns: [] } });
});
after(async () => {
  try {
    await s?.close();
  } finally {
    out?.close();
    // Nothing of faasbox's is left: no bridge or veth, no table.
    endNetSuite(guard);
  }
});

/** Its IPv4 interfaces, and what a GET of event.path from the outside server gave (status and bytes, or the error). */
const code = `import http from 'node:http';
import { networkInterfaces } from 'node:os';
export default async (event) => {
  const ifs = Object.fromEntries(Object.entries(networkInterfaces()).map(([n, a]) => [n, a.filter((x) => x.family === 'IPv4').map((x) => x.address)]));
  const got = await new Promise((resolve) => {
    const req = http.get({ host: event.host, port: event.port, path: event.path, timeout: 1500 }, (res) => {
      let bytes = 0;
      let head = '';
      res.on('data', (d) => { bytes += d.length; if (head.length < 40) head += d.toString().slice(0, 40); });
      res.on('end', () => resolve({ status: res.statusCode, bytes, head }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => resolve({ error: e.code || e.message }));
  });
  return { ifs, got };
};`;

const bridgeStemIdle = () => s.worker.pool.slots().some((x) => x.kind === 'stem' && x.network === 'bridge' && x.state === 'idle');

async function call(name: string, path = '/'): Promise<{ kind: string | null; addr: string | undefined; ifs: string[]; got: { status?: number; bytes?: number; head?: string; error?: string }; id: string }> {
  const r = await s.invoke(name, { host: out.address, port: HTTP_PORT, path }, { query: '?wait=30000' });
  assert.equal(r.status, 200, r.text);
  return { kind: r.headers.get('x-cold-start'), addr: r.json.ifs.eth0?.[0], ifs: Object.keys(r.json.ifs).sort(), got: r.json.got, id: r.headers.get('x-invocation-id')! };
}

test('bridge functions are specialised from bridge stem cells made ahead: eth0 of the subnet, distinct addresses, each with its own allowlist; none stays loopback only', async () => {
  assert.equal((await s.deploy('open', { runtime: 'nodejs20', code, network: { mode: 'bridge' } })).status, 201);
  await eventually(bridgeStemIdle, 30_000, 'a bridge stem cell made after the deploy');
  const specialisedBefore = s.worker.pool.counters.specializations;
  const open = await call('open');
  assert.equal(open.kind, 'specialized', 'the first invocation after deploy took the bridge stem cell');
  assert.equal(s.worker.pool.counters.specializations, specialisedBefore + 1);
  assert.deepEqual(open.ifs, ['eth0', 'lo']);
  assert.match(open.addr!, /^198\.51\.100\.\d+$/);
  assert.equal(open.got.status, 200, JSON.stringify(open.got));
  assert.match(open.got.head!, /^outside-ok/);

  // Two more bridge functions of the same shape: one allowed the outside server's port, one another port only.
  assert.equal((await s.deploy('allowed', { runtime: 'nodejs20', code, network: { mode: 'bridge', egress: [`${out.address}/32:${HTTP_PORT}`] } })).status, 201);
  assert.equal((await s.deploy('elsewhere', { runtime: 'nodejs20', code, network: { mode: 'bridge', egress: [`${out.address}/32:9`] } })).status, 201);
  await eventually(bridgeStemIdle, 30_000, 'a bridge stem cell for the next function');
  const allowed = await call('allowed');
  await eventually(bridgeStemIdle, 30_000, 'a bridge stem cell for the next function');
  const elsewhere = await call('elsewhere');
  assert.equal(allowed.kind, 'specialized');
  assert.equal(elsewhere.kind, 'specialized');
  assert.equal(new Set([open.addr, allowed.addr, elsewhere.addr]).size, 3, `distinct addresses: ${open.addr} ${allowed.addr} ${elsewhere.addr}`);
  assert.equal(allowed.got.status, 200, `its allowlist lets it reach ${out.address}:${HTTP_PORT}: ${JSON.stringify(allowed.got)}`);
  assert.ok(elsewhere.got.error, `its allowlist (port 9 only) blocks port ${HTTP_PORT}: ${JSON.stringify(elsewhere.got)}`);
  // Neither one's allowlist is the other's, nor narrows the open function's.
  const again = await call('open');
  assert.equal(again.kind, 'warm');
  assert.equal(again.got.status, 200);
  assert.ok((await call('elsewhere')).got.error, 'still blocked, warm');

  // A none function: loopback only, and no way out.
  assert.equal((await s.deploy('plain', { runtime: 'nodejs20', code })).status, 201);
  const plain = await call('plain');
  assert.deepEqual(plain.ifs, ['lo']);
  assert.ok(plain.got.error, JSON.stringify(plain.got));
  assert.equal(s.worker.pool.slots().find((x) => x.fn?.startsWith('plain@'))?.network, undefined, 'it did not take a bridge stem cell');
});

test("an invocation's record and the metrics carry the bytes it moved: 1 MB downloaded shows as 1.0-1.15 MB received", async () => {
  const MB = 1_000_000;
  const r = await call('open', `/bulk?n=${MB}`);
  assert.equal(r.got.bytes, MB, JSON.stringify(r.got));
  const rec = (await s.get(`/v1/invocations/${r.id}`)).json;
  console.log(`# 1 MB download: usage ${JSON.stringify(rec.usage)}`);
  // The veth counts what crosses it: payload, the reply headers and the TCP/IP/Ethernet headers (few: GRO hands it 64 KB segments).
  assert.ok(rec.usage.netRxBytes >= MB && rec.usage.netRxBytes <= 1.15 * MB, `netRxBytes ${rec.usage.netRxBytes}`);
  assert.ok(rec.usage.netTxBytes > 0 && rec.usage.netTxBytes < 0.2 * MB, `netTxBytes ${rec.usage.netTxBytes} (the request and its ACKs)`);
  const metric = /faasbox_function_network_bytes_total\{function="open",direction="rx"\} (\d+)/;
  await eventually(async () => metric.test((await s.get('/metrics')).text), 10_000, 'the network counter');
  assert.ok(Number(metric.exec((await s.get('/metrics')).text)![1]) >= MB);
  const plain = await call('plain');
  const plainRec = (await s.get(`/v1/invocations/${plain.id}`)).json;
  assert.equal(plainRec.usage.netRxBytes, undefined, 'a none function has no network usage to report');
});

test('deleting the last bridge functions takes the bridge stem cells (and their leases) away', async () => {
  for (const name of ['open', 'allowed', 'elsewhere']) assert.equal((await s.del(`/v1/functions/${name}`)).status, 200);
  await eventually(() => !s.worker.pool.slots().some((x) => x.network === 'bridge'), 30_000, 'no bridge container left in the pool');
  // What leases remain are the engine's parked bridge seeds' (inits with eth0 made ahead), no container's.
  const seedNames = () => new Set(s.worker.engine.seeds?.parked.map((x) => x.name) ?? []);
  await eventually(() => s.worker.engine.network().ipam.list().every((l) => seedNames().has(l.id)), 10_000, "no lease left but the parked seeds'");
});
