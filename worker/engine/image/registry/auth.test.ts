import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { RegistryUnauthorizedError } from '../../../../common/errors.js';
import { Authenticator, credsFromDockerConfig, dockerConfigDir, parseChallenges, parseCreds, type TokenFetcher } from './auth.js';

test('WWW-Authenticate: Bearer with quoted parameters, commas inside quotes, escapes', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
  ]);
  assert.deepEqual(parseChallenges('Bearer realm="r", error="insufficient_scope", note="say \\"hi\\""'), [{ scheme: 'bearer', params: { realm: 'r', error: 'insufficient_scope', note: 'say "hi"' } }]);
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.deepEqual(parseChallenges('BASIC Realm=plain'), [{ scheme: 'basic', params: { realm: 'plain' } }]);
});

test('several challenges in one header or in several', () => {
  assert.deepEqual(
    parseChallenges('Basic realm="a", Bearer realm="b",service=s').map((c) => [c.scheme, c.params]),
    [
      ['basic', { realm: 'a' }],
      ['bearer', { realm: 'b', service: 's' }],
    ],
  );
  assert.deepEqual(
    parseChallenges(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme),
    ['basic', 'bearer'],
  );
  assert.deepEqual(parseChallenges(undefined), []);
  assert.deepEqual(parseChallenges('Negotiate'), [{ scheme: 'negotiate', params: {} }]);
});

test('USER:PASS: the first colon splits (a password may hold colons)', () => {
  assert.deepEqual(parseCreds('u:p:q\n'), { username: 'u', password: 'p:q' });
  assert.equal(parseCreds('nocolon'), undefined);
  assert.equal(parseCreds(':p'), undefined);
});

test('credentials from config.json auths: by host, URL keys, username/password fields', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-dockercfg-'));
  try {
    assert.equal(credsFromDockerConfig(dir, 'r.io'), undefined, 'no file: none');
    writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({
        auths: {
          'r.io': { auth: Buffer.from('alice:pw:1').toString('base64') },
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:hubpw').toString('base64') },
          'http://127.0.0.1:5000': { username: 'bob', password: 'bpw' },
        },
      }),
    );
    assert.deepEqual(credsFromDockerConfig(dir, 'r.io'), { username: 'alice', password: 'pw:1' });
    assert.deepEqual(credsFromDockerConfig(dir, 'docker.io'), { username: 'hub', password: 'hubpw' });
    assert.deepEqual(credsFromDockerConfig(dir, '127.0.0.1:5000'), { username: 'bob', password: 'bpw' });
    assert.equal(credsFromDockerConfig(dir, 'other.io'), undefined);
    writeFileSync(path.join(dir, 'config.json'), '{"auths": {"r.io": {"auth": "c2VjcmV0OnB3"}}');
    assert.throws(() => credsFromDockerConfig(dir, 'r.io'), (e: Error) => /not valid JSON/.test(e.message) && !e.message.includes('c2VjcmV0'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(dockerConfigDir(undefined, { DOCKER_CONFIG: '/x' }), '/x');
  assert.equal(dockerConfigDir('/set', { DOCKER_CONFIG: '/x' }), '/set');
});

function fakeTokens(answers: { status?: number; body?: unknown }[]) {
  const calls: { url: URL; headers: Record<string, string> }[] = [];
  const fetch: TokenFetcher = async (url, headers) => {
    calls.push({ url, headers });
    const a = answers[Math.min(calls.length - 1, answers.length - 1)]!;
    return { status: a.status ?? 200, body: a.body };
  };
  return { calls, fetch };
}

const bearer = 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"';
const secret = { username: 'u', password: 'hunter2-secret' };

test('the Bearer flow: token from the realm with Basic, kept until expires_in, then fetched again', async () => {
  let now = 1_000_000;
  const t = fakeTokens([{ body: { token: 't1', expires_in: 10 } }, { body: { access_token: 't2', expires_in: 10 } }]);
  const a = new Authenticator('reg', 'a/b', secret, t.fetch, () => now);
  assert.equal(await a.header(), undefined, 'anonymous until challenged');
  await a.unauthorized(bearer, undefined);
  assert.equal(await a.header(), 'Bearer t1');
  assert.equal(t.calls[0]!.url.searchParams.get('service'), 'reg');
  assert.equal(t.calls[0]!.url.searchParams.get('scope'), 'repository:a/b:pull');
  assert.equal(t.calls[0]!.headers.authorization, `Basic ${Buffer.from('u:hunter2-secret').toString('base64')}`);
  now += 5_000;
  assert.equal(await a.header(), 'Bearer t1', 'still valid');
  assert.equal(t.calls.length, 1);
  now += 5_000;
  assert.equal(await a.header(), 'Bearer t2', 'expired: fetched again');
  assert.equal(t.calls.length, 2);
});

test('concurrent requests share one token fetch; no expires_in means 60 s', async () => {
  let now = 0;
  const t = fakeTokens([{ body: { token: 't1' } }, { body: { token: 't2' } }]);
  const a = new Authenticator('reg', 'a/b', undefined, t.fetch, () => now);
  await a.unauthorized(bearer, undefined);
  assert.deepEqual(await Promise.all([a.header(), a.header(), a.header()]), ['Bearer t1', 'Bearer t1', 'Bearer t1']);
  assert.equal(t.calls.length, 1);
  assert.equal(t.calls[0]!.headers.authorization, undefined, 'anonymous token request without creds');
  now = 50_000;
  assert.equal(await a.header(), 'Bearer t1');
  now = 60_000;
  assert.equal(await a.header(), 'Bearer t2');
});

test('a fresh token refused: RegistryUnauthorizedError; an expired one: fetched again', async () => {
  let now = 0;
  const t = fakeTokens([{ body: { token: 't1', expires_in: 100 } }, { body: { token: 't2', expires_in: 100 } }]);
  const a = new Authenticator('reg', 'a/b', secret, t.fetch, () => now);
  await a.unauthorized(bearer, undefined);
  const sent = await a.header();
  await assert.rejects(a.unauthorized(`${bearer},error="insufficient_scope"`, sent), (e: Error) => e instanceof RegistryUnauthorizedError && /insufficient_scope/.test(e.message) && !e.message.includes('hunter2'));
  now = 200_000;
  await a.unauthorized(bearer, sent);
  assert.equal(await a.header(), 'Bearer t2');
});

test('the token server refusing the credentials, or answering no token: unauthorized, no secret', async () => {
  for (const answer of [{ status: 401 }, { status: 200, body: {} }, { status: 500 }]) {
    const t = fakeTokens([answer]);
    const a = new Authenticator('reg', 'a/b', secret, t.fetch);
    await a.unauthorized(bearer, undefined);
    await assert.rejects(a.header(), (e: Error) => e instanceof RegistryUnauthorizedError && !e.message.includes('hunter2') && !e.stack!.includes('hunter2'));
  }
});

test('Basic: after the challenge; refused once sent; no creds is its own message', async () => {
  const a = new Authenticator('reg', 'a/b', secret, fakeTokens([]).fetch);
  await a.unauthorized('Basic realm="x"', undefined);
  const h = await a.header();
  assert.equal(h, `Basic ${Buffer.from('u:hunter2-secret').toString('base64')}`);
  await assert.rejects(a.unauthorized('Basic realm="x"', h), (e: Error) => e instanceof RegistryUnauthorizedError && /user "u" were refused/.test(e.message) && !e.message.includes('hunter2'));
  const anon = new Authenticator('reg', 'a/b', undefined, fakeTokens([]).fetch);
  await assert.rejects(anon.unauthorized('Basic realm="x"', undefined), /none were given/);
  await assert.rejects(anon.unauthorized('Negotiate', undefined), /no challenge faasbox speaks/);
});
