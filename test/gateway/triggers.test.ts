/**
 * The trigger resource over the gateway's HTTP API and the `faasbox trigger` CLI, against
 * real Redis: create, replace, list, get with state, pause, resume, delete; 400 naming the
 * field, 404 for an unknown function, version or trigger.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { serve } from '@hono/node-server';
import { triggerStateKey } from '../../common/triggers.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { API_KEY, jsonHeaders, NODE_CODE, testGateway, type TestGateway } from './harness.js';

let server: TestRedis;
let gw: TestGateway;
let version: string;
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

before(async () => {
  server = await startRedis();
  gw = await testGateway(server);
  const d = await gw.deploy('target', { runtime: 'nodejs20', code: NODE_CODE });
  assert.equal(d.status, 201);
  version = d.json.version;
});
after(async () => {
  await gw?.close();
  await server?.stop();
});

async function req(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await gw.app.request(p, { method, headers: jsonHeaders, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: await res.json() };
}

test('create, replace, list, get, pause, resume and delete a trigger', async () => {
  const body = { function: 'target', source: { kind: 'queue', queue: 'orders', redisUrl: 'redis://:hunter2@127.0.0.1:1/0' }, batchSize: 5 };
  const created = await req('PUT', '/v1/triggers/orders', body);
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.name, 'orders');
  assert.equal(created.json.concurrency, 10);
  assert.equal(created.json.source.prefix, 'bull');
  assert.doesNotMatch(JSON.stringify(created.json), /hunter2/, 'the source password is not shown');
  const replaced = await req('PUT', '/v1/triggers/orders', { ...body, concurrency: 2, version });
  assert.equal(replaced.status, 200);
  assert.equal(replaced.json.concurrency, 2);
  assert.equal(replaced.json.createdAt, created.json.createdAt);

  await gw.redis.hset(triggerStateKey(gw.prefix, 'orders'), { inFlight: 3, lastError: 'source down', lastErrorAt: '2026-01-01T00:00:00.000Z' });
  const got = await req('GET', '/v1/triggers/orders');
  assert.equal(got.status, 200);
  assert.equal(got.json.state.inFlight, 3);
  assert.deepEqual(got.json.state.lastError, { message: 'source down', at: '2026-01-01T00:00:00.000Z' });
  const list = await req('GET', '/v1/triggers');
  assert.deepEqual(list.json.triggers.map((t: { name: string }) => t.name), ['orders']);

  assert.equal((await req('POST', '/v1/triggers/orders/pause')).json.paused, true);
  assert.equal((await req('GET', '/v1/triggers/orders')).json.paused, true);
  assert.equal((await req('POST', '/v1/triggers/orders/resume')).json.paused, false);

  const del = await req('DELETE', '/v1/triggers/orders');
  assert.deepEqual(del.json, { name: 'orders', deleted: true });
  assert.equal(await gw.redis.exists(triggerStateKey(gw.prefix, 'orders')), 0, 'its state goes with it');
  const gone = await req('GET', '/v1/triggers/orders');
  assert.equal(gone.status, 404);
  assert.equal(gone.json.error.code, 'TRIGGER_NOT_FOUND');
  assert.equal((await req('POST', '/v1/triggers/orders/pause')).status, 404);
  assert.equal((await req('DELETE', '/v1/triggers/orders')).status, 404);
});

test('bad bodies are 400 VALIDATION_FAILED naming the field; unknown functions and versions 404', async () => {
  const cases: [unknown, string][] = [
    [{ function: 'target', source: { kind: 'cron', schedule: '99 * * * *' } }, 'source.schedule'],
    [{ function: 'target', source: { kind: 'cron', schedule: '* * * * *', timezone: 'Atlantis/Capital' } }, 'source.timezone'],
    [{ function: 'target', source: { kind: 'queue', queue: 'q' }, onSuccess: { url: 'file:///etc/passwd' } }, 'onSuccess.url'],
    [{ function: 'target', source: { kind: 'queue', queue: 'q' }, retry: { backoff: { type: 'linear' } } }, 'retry.backoff.type'],
    [{ function: 'target', source: { kind: 'queue', queue: 'q' }, concurrency: 0 }, 'concurrency'],
  ];
  for (const [body, field] of cases) {
    const r = await req('PUT', '/v1/triggers/bad', body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(r.json.error.details.issues.map((i: { path: string }) => i.path), [field]);
    assert.match(r.json.error.message, new RegExp(field.replace(/\./g, '\\.')));
  }
  const badName = await req('PUT', '/v1/triggers/Bad_Name', { function: 'target', source: { kind: 'queue', queue: 'q' } });
  assert.equal(badName.status, 400);
  const noFn = await req('PUT', '/v1/triggers/t', { function: 'ghost', source: { kind: 'queue', queue: 'q' } });
  assert.equal(noFn.status, 404);
  assert.equal(noFn.json.error.code, 'FUNCTION_NOT_FOUND');
  const noVersion = await req('PUT', '/v1/triggers/t', { function: 'target', version: `sha256:${'0'.repeat(64)}`, source: { kind: 'queue', queue: 'q' } });
  assert.equal(noVersion.status, 404);
  assert.equal(noVersion.json.error.code, 'VERSION_NOT_FOUND');
  const noKey = await gw.app.request('/v1/triggers', {});
  assert.equal(noKey.status, 401);
});

function faasbox(url: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(repo, 'bin/faasbox.js'), ...args], { env: { ...process.env, FAASBOX_URL: url, FAASBOX_API_KEY: API_KEY } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('faasbox trigger add|ls|get|pause|resume|rm, with --json and human output', async () => {
  const srv = serve({ fetch: gw.app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((r) => srv.once('listening', r));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  try {
    const help = await faasbox(url, ['trigger', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--cron EXPR/);
    const add = await faasbox(url, ['trigger', 'add', 'tick', '--function', 'target', '--cron', '*/5 * * * * *', '--timezone', 'Europe/Paris', '--json']);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(JSON.parse(add.stdout).source.timezone, 'Europe/Paris');
    const addQ = await faasbox(url, ['trigger', 'add', 'jobs', '--function', 'target', '--queue', 'work', '--batch-size', '4', '--max-attempts', '2']);
    assert.equal(addQ.code, 0, addQ.stderr);
    assert.match(addQ.stdout, /trigger jobs: queue bull:work -> target/);
    const ls = await faasbox(url, ['trigger', 'ls', '--json']);
    assert.deepEqual(JSON.parse(ls.stdout).map((t: { name: string }) => t.name), ['jobs', 'tick']);
    const get = await faasbox(url, ['trigger', 'get', 'jobs']);
    assert.match(get.stdout, /jobs: queue bull:work -> target\n {2}lag -, in flight 0/);
    assert.match((await faasbox(url, ['trigger', 'pause', 'jobs'])).stdout, /paused/);
    assert.match((await faasbox(url, ['trigger', 'resume', 'jobs'])).stdout, /resumed/);
    const bad = await faasbox(url, ['trigger', 'add', 'x', '--function', 'target', '--cron', 'never']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /source\.schedule.*VALIDATION_FAILED/);
    const usage = await faasbox(url, ['trigger', 'add', 'x', '--function', 'target']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /exactly one source/);
    assert.equal((await faasbox(url, ['trigger', 'rm', 'jobs'])).code, 0);
    assert.equal((await faasbox(url, ['trigger', 'rm', 'tick'])).code, 0);
    const missing = await faasbox(url, ['trigger', 'get', 'tick']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /TRIGGER_NOT_FOUND/);
  } finally {
    await new Promise((r) => srv.close(r));
  }
});
