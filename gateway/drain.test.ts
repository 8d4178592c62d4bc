import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FaasboxError } from '../common/errors.js';
import { withinGrace } from '../common/drain.js';
import { GatewayDrain } from './drain.js';

test('withinGrace: true when the work settles in time (rejected too), false when the grace runs out first', async () => {
  assert.equal(await withinGrace(Promise.resolve(), 1000), true);
  assert.equal(await withinGrace(Promise.reject(new Error('x')), 1000), true);
  assert.equal(await withinGrace(new Promise(() => {}), 20), false);
});

test('a draining gateway refuses new requests but the probes and /metrics, UNAVAILABLE', () => {
  const d = new GatewayDrain();
  d.check('/v1/functions/f/invoke');
  d.begin();
  assert.equal(d.draining, true);
  for (const p of ['/healthz', '/readyz', '/metrics']) d.check(p);
  assert.throws(() => d.check('/v1/functions/f/invoke'), (e: unknown) => e instanceof FaasboxError && e.code === 'UNAVAILABLE');
});

test('idle() waits for the open requests of the server it watches, counted until their answers end', async () => {
  const d = new GatewayDrain();
  let answer: (() => void) | undefined;
  const server = createServer((_req, res) => {
    answer = () => res.end('done');
  });
  d.watch(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await d.idle();
    const reply = new Promise<string>((resolve, reject) => {
      request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', path: '/' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve(body));
      })
        .on('error', reject)
        .end();
    });
    while (!answer) await new Promise((r) => setTimeout(r, 5));
    assert.equal(d.openRequests, 1);
    let idle = false;
    const waiting = d.idle().then(() => (idle = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(idle, false, 'not idle while a request is open');
    answer();
    await waiting;
    assert.equal(await reply, 'done');
    assert.equal(d.openRequests, 0);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
