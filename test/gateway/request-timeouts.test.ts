/**
 * A client that sends its headers, or its headers and part of its body, and then stops,
 * over a raw socket to a real gateway (startGateway) with short timeouts: it gets 408
 * REQUEST_TIMEOUT as JSON and the gateway closes the socket. A request that has fully
 * arrived may take longer than the timeout to be answered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:net';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { redisForFile } from '../support/redis.js';
import { API_KEY, NODE_CODE } from './harness.js';

const server = redisForFile();
const HEADERS_MS = 300;
const REQUEST_MS = 600;
let gw: RunningGateway;

/** Writes `sent` and never more; resolves with all the gateway wrote once it closes the socket (or rejects after waitMs). */
function stall(sent: string, waitMs = 20_000): Promise<{ text: string; closedAfterMs: number }> {
  const port = gw.port;
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let text = '';
    const t0 = Date.now();
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`the gateway still held the socket after ${waitMs} ms; it wrote: ${JSON.stringify(text)}`));
    }, waitMs);
    sock.on('data', (d) => (text += d.toString()));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: Date.now() - t0 });
    });
    sock.write(sent);
  });
}

function parse(text: string): { status: number; headers: string; body: any } {
  const [head, body] = text.split('\r\n\r\n', 2) as [string, string];
  return { status: Number(head.split(' ')[1]), headers: head, body: JSON.parse(body) };
}

describe('request timeouts', () => {
  before(async () => {
    gw = await startGateway({
      apiKey: API_KEY,
      redisUrl: server.url,
      prefix: `test-timeouts-${process.pid}`,
      port: 0,
      headersTimeoutMs: HEADERS_MS,
      requestTimeoutMs: REQUEST_MS,
      // Longer than the request timeout: a complete request waiting for a worker must not be cut.
      syncQueueTimeoutMs: 2 * REQUEST_MS,
    });
  });
  after(async () => {
    await gw?.close();
  });

  test('headers and half a body, then silence: 408 REQUEST_TIMEOUT as JSON, and the socket closes', async () => {
    const partial = '{"half":"of a bo';
    // A deploy with the key: the gateway waits for the body.
    const r = await stall(`PUT /v1/functions/half HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n${partial}`);
    const res = parse(r.text);
    assert.equal(res.status, 408, r.text);
    assert.match(res.headers, /content-type: application\/json/i);
    assert.equal(res.body.error.code, 'REQUEST_TIMEOUT');
    assert.match(res.body.error.message, new RegExp(`${REQUEST_MS} ms`));
    console.log(`# closed ${r.closedAfterMs} ms after the partial body (request timeout ${REQUEST_MS} ms)`);
  });

  test('headers that never end: 408 REQUEST_TIMEOUT as JSON, and the socket closes', async () => {
    const r = await stall('PUT /v1/functions/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applic');
    const res = parse(r.text);
    assert.equal(res.status, 408, r.text);
    assert.equal(res.body.error.code, 'REQUEST_TIMEOUT');
    console.log(`# closed ${r.closedAfterMs} ms after the partial headers (headers timeout ${HEADERS_MS} ms)`);
  });

  test('a complete request is answered even when the answer takes longer than the timeouts', async () => {
    const auth = { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' };
    const d = await fetch(`${gw.url}/v1/functions/slow`, { method: 'PUT', headers: auth, body: JSON.stringify({ runtime: 'nodejs20', code: NODE_CODE }) });
    assert.equal(d.status, 201);
    // No worker: it waits syncQueueTimeoutMs (twice the request timeout), then 503.
    const res = await fetch(`${gw.url}/v1/functions/slow/invoke`, { method: 'POST', headers: auth, body: '{}' });
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NO_CAPACITY');
  });

  test('an unparsable request still gets its 400 and a closed socket', async () => {
    const r = await stall('NOT HTTP AT ALL\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
  });

  test('timeouts come from the configuration, and are checked', async () => {
    await assert.rejects(startGateway({ apiKey: API_KEY, redisUrl: server.url, port: 0, headersTimeoutMs: 2000, requestTimeoutMs: 1000 }), /headersTimeoutMs/);
  });
});
