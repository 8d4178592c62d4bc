/**
 * Sending a callback under the host policy (common/delivery/callback.ts), against real
 * HTTP servers on 127.0.0.1 and the machine's real name resolution: a hostname that
 * resolves to a denied address is never contacted, an allowed one is contacted at the
 * address that was checked (its Host header kept), redirects are not followed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { lookup } from 'node:dns/promises';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { CallbackFailedError, CallbackRefusedError, checkedAddress, sendCallback } from '../../common/delivery/callback.js';
import { HostPolicy } from '../../common/delivery/host-policy.js';

interface Seen {
  req: IncomingMessage;
  body: string;
}

let server: Server;
let port: number;
const seen: Seen[] = [];
let answer: (req: IncomingMessage) => { status: number; headers?: Record<string, string> } | 'hang' = () => ({ status: 200 });

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ req, body });
      const a = answer(req);
      if (a === 'hang') return;
      res.writeHead(a.status, a.headers).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const request = (url: string, timeoutMs = 5000) => ({ url, body: Buffer.from('{"a":1}'), headers: { 'content-type': 'application/json' }, timeoutMs });

test('a hostname that resolves to a denied address is refused after resolution and never contacted', async (t) => {
  const name = hostname();
  const answers = await lookup(name, { all: true }).catch(() => []);
  const policy = new HostPolicy();
  if (answers.length === 0 || answers.some((a) => policy.checkAddress(a.address).ok)) {
    t.skip(`${name} does not resolve to this machine's own or loopback addresses only, which this test needs`);
    return;
  }
  // The URL alone passes: a hostname on neither list is checked once resolved.
  assert.equal(policy.checkUrl(`http://${name}:${port}/cb`).ok, true);
  const before = seen.length;
  await assert.rejects(sendCallback(policy, request(`http://${name}:${port}/cb`)), (err: Error) => err instanceof CallbackRefusedError && /resolves to .*denied/.test(err.message));
  assert.equal(seen.length, before, 'the server saw no request');
});

test('an allowed address is contacted at the checked address, with the URL\'s Host header', async () => {
  const policy = new HostPolicy({ allow: ['127.0.0.1'] });
  const name = hostname();
  const resolvesHere = (await lookup(name, { all: true }).catch(() => [])).some((a) => a.address === '127.0.0.1');
  const host = resolvesHere ? name : '127.0.0.1';
  answer = () => ({ status: 204 });
  assert.equal(await sendCallback(policy, request(`http://${host}:${port}/cb?token=x`)), 204);
  const last = seen.at(-1)!;
  assert.equal(last.req.headers.host, `${host}:${port}`);
  assert.equal(last.req.url, '/cb?token=x');
  assert.equal(last.req.method, 'POST');
  assert.equal(last.body, '{"a":1}');
  assert.equal(last.req.headers['content-type'], 'application/json');
});

test('a redirect is not followed, a non-2xx answer is a failure to try again, and a hanging server times out', async () => {
  const policy = new HostPolicy({ allow: ['127.0.0.1'] });
  answer = () => ({ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
  const before = seen.length;
  await assert.rejects(sendCallback(policy, request(`http://127.0.0.1:${port}/r`)), (err: Error) => err instanceof CallbackFailedError && err.status === 302 && /redirects are not followed/.test(err.message));
  assert.equal(seen.length, before + 1, 'one request, the redirect not followed');
  answer = () => ({ status: 503 });
  await assert.rejects(sendCallback(policy, request(`http://127.0.0.1:${port}/r`)), (err: Error) => err instanceof CallbackFailedError && err.status === 503);
  answer = () => 'hang';
  await assert.rejects(sendCallback(policy, request(`http://127.0.0.1:${port}/slow`, 300)), (err: Error) => err instanceof CallbackFailedError && /no answer within 300 ms/.test(err.message));
  answer = () => ({ status: 200 });
});

test('of several resolved addresses only a permitted one is used; none permitted is a refusal', async () => {
  const policy = new HostPolicy({ denyOwnAddresses: false });
  const url = new URL('https://hooks.example.com/x');
  const mixed = async () => [{ address: '10.0.0.1', family: 4 }, { address: '93.184.216.34', family: 4 }];
  assert.deepEqual(await checkedAddress(policy, url, mixed), { address: '93.184.216.34', family: 4 });
  const internal = async () => [{ address: '127.0.0.1', family: 4 }, { address: '::ffff:169.254.169.254', family: 6 }];
  await assert.rejects(checkedAddress(policy, url, internal), CallbackRefusedError);
  await assert.rejects(sendCallback(policy, request('http://[::ffff:127.0.0.1]/')), CallbackRefusedError);
});
