/**
 * The puller's auth against a real registry: htpasswd Basic (bcrypt), token auth (an ES256
 * JWT with its x5c chain, from a token server of the test's own), credentials from a
 * Docker config.json; refusals are REGISTRY_UNAUTHORIZED and never carry the secret.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FaasboxError } from '../../../../common/errors.js';
import { pullImage } from '../../../../worker/engine/image/pull.js';
import { TestStore } from '../../../support/image-store.js';
import { startRegistryProxy } from '../../../support/registry-proxy.js';
import { OciLayout, registrySkip, skopeoPush, startRegistry, type TestRegistry } from '../../../support/registry.js';
import { startTokenServer, type TokenServer } from '../../../support/token-server.js';

const skip = registrySkip();
const PASSWORD = 's3cret-Pa55word-do-not-leak';

async function refusal(p: Promise<unknown>): Promise<FaasboxError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FaasboxError, (err as Error).stack);
    return err;
  }
  assert.fail('the pull succeeded');
}

/** A small image: one layer with one file. */
function smallImage(dir: string): OciLayout {
  const oci = new OciLayout(dir);
  const files = path.join(dir, 'files');
  mkdirSync(files, { recursive: true });
  writeFileSync(path.join(files, 'hello'), 'hello from an authenticated registry\n');
  for (const tag of ['a', 'b', 'c']) {
    writeFileSync(path.join(files, `layer-${tag}`), `layer ${tag}\n`.repeat(1000));
  }
  oci.umoci('new', '--image', oci.image('v1'));
  oci.umoci('insert', '--image', oci.image('v1'), path.join(files, 'hello'), '/hello');
  for (const tag of ['a', 'b', 'c']) oci.umoci('insert', '--image', oci.image('v1'), path.join(files, `layer-${tag}`), `/layer-${tag}`);
  return oci;
}

describe('registry auth', { skip }, () => {
  let work: string;
  let oci: OciLayout;
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'faasbox-regauth-'));
    oci = smallImage(path.join(work, 'oci'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  describe('htpasswd Basic', () => {
    let reg: TestRegistry;
    const stores: TestStore[] = [];
    const newStore = () => {
      const s = new TestStore('faasbox-regauth-store-');
      stores.push(s);
      return s;
    };
    before(async () => {
      reg = await startRegistry({ kind: 'htpasswd', user: 'alice', password: PASSWORD });
      await skopeoPush(oci.image('v1'), `${reg.host}/auth/img:v1`, { creds: `alice:${PASSWORD}` });
    });
    after(async () => {
      await reg?.stop();
      for (const s of stores) s.remove();
    });

    test('right credentials: pulled', async () => {
      const r = await pullImage(newStore().imagesDir, `${reg.host}/auth/img:v1`, { creds: { username: 'alice', password: PASSWORD } });
      assert.equal(r.manifestDigest, oci.manifest('v1').digest);
      assert.ok(!JSON.stringify(r).includes(PASSWORD));
    });

    test('a wrong password: REGISTRY_UNAUTHORIZED, the password in no message', async () => {
      const wrong = `${PASSWORD}-wrong`;
      const e = await refusal(pullImage(newStore().imagesDir, `${reg.host}/auth/img:v1`, { creds: { username: 'alice', password: wrong } }));
      assert.equal(e.code, 'REGISTRY_UNAUTHORIZED');
      assert.match(e.message, /alice/);
      assert.ok(!`${e.message} ${JSON.stringify(e.details)} ${e.stack}`.includes(wrong.slice(0, 12)), e.message);
    });

    test('no credentials: REGISTRY_UNAUTHORIZED saying none were given', async () => {
      const e = await refusal(pullImage(newStore().imagesDir, `${reg.host}/auth/img:v1`, { registries: { dockerConfigDir: path.join(work, 'no-such-dir') } }));
      assert.equal(e.code, 'REGISTRY_UNAUTHORIZED');
      assert.match(e.message, /none were given/);
    });

    test('credentials from a Docker config.json (auths, base64 auth)', async () => {
      const dir = path.join(work, 'docker-config');
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { 'other.example:5000': { auth: Buffer.from('bob:x').toString('base64') }, [`http://${reg.host}`]: { auth: Buffer.from(`alice:${PASSWORD}`).toString('base64') } } }));
      const r = await pullImage(newStore().imagesDir, `${reg.host}/auth/img:v1`, { registries: { dockerConfigDir: dir } });
      assert.equal(r.manifestDigest, oci.manifest('v1').digest);
    });

    test('a redirect to blob storage on another host gets no Authorization', async () => {
      // An anonymous registry behind a proxy that demands Basic itself and redirects blob
      // requests (307) to a storage server on another origin (localhost, not 127.0.0.1).
      const anon = await startRegistry();
      const front = await startRegistryProxy(anon.port);
      try {
        await skopeoPush(oci.image('v1'), `${anon.host}/auth/img:v1`);
        front.faults.redirectBlobs = true;
        front.faults.basic = { user: 'carol', password: 'proxy-pass' };
        const r = await pullImage(newStore().imagesDir, `${front.host}/auth/img:v1`, { creds: { username: 'carol', password: 'proxy-pass' } });
        assert.equal(r.manifestDigest, oci.manifest('v1').digest);
        const blobReqs = front.seen.filter((s) => s.path.includes('/blobs/'));
        assert.ok(blobReqs.length > 0 && blobReqs.every((s) => s.authorization), 'the registry got Basic');
        assert.equal(front.storageSeen.length, 5, 'the storage server served the config and the 4 layers');
        assert.ok(front.storageSeen.every((s) => !s.authorization), 'no Authorization sent to the storage host');
      } finally {
        await front.stop();
        await anon.stop();
      }
    });
  });

  describe('token auth (ES256 JWT, x5c)', () => {
    let tokens: TokenServer;
    let reg: TestRegistry;
    const stores: TestStore[] = [];
    const newStore = () => {
      const s = new TestStore('faasbox-regauth-token-');
      stores.push(s);
      return s;
    };
    before(async () => {
      tokens = await startTokenServer({ user: { name: 'dave', password: PASSWORD } });
      reg = await startRegistry({ kind: 'token', realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, certFile: tokens.certFile });
      await skopeoPush(oci.image('v1'), `${reg.host}/tok/img:v1`, { creds: `dave:${PASSWORD}` });
    });
    after(async () => {
      await reg?.stop();
      await tokens?.stop();
      for (const s of stores) s.remove();
    });

    test('the Bearer flow: a token from the realm with Basic credentials, then the pull', async () => {
      const before = tokens.requests.length;
      const r = await pullImage(newStore().imagesDir, `${reg.host}/tok/img:v1`, { creds: { username: 'dave', password: PASSWORD } });
      assert.equal(r.manifestDigest, oci.manifest('v1').digest);
      const mine = tokens.requests.slice(before);
      assert.equal(mine.length, 1, 'one token for the whole pull');
      assert.equal(mine[0]!.scope, 'repository:tok/img:pull');
      assert.equal(mine[0]!.authorized, true);
    });

    test('a token that expires is refreshed', async () => {
      const proxy = await startRegistryProxy(reg.port, { passAuthorization: true });
      tokens.options.expiresIn = 1;
      proxy.faults.blobDelayMs = 700;
      try {
        const before = tokens.issued;
        const r = await pullImage(newStore().imagesDir, `${proxy.host}/tok/img:v1`, { creds: { username: 'dave', password: PASSWORD } });
        assert.equal(r.manifestDigest, oci.manifest('v1').digest);
        assert.ok(tokens.issued - before >= 2, `a new token once the first expired (${tokens.issued - before} issued)`);
      } finally {
        tokens.options.expiresIn = 300;
        await proxy.stop();
      }
    });

    test('wrong credentials at the token server: REGISTRY_UNAUTHORIZED without the password', async () => {
      const wrong = 'wrong-token-password';
      const e = await refusal(pullImage(newStore().imagesDir, `${reg.host}/tok/img:v1`, { creds: { username: 'dave', password: wrong } }));
      assert.equal(e.code, 'REGISTRY_UNAUTHORIZED');
      assert.match(e.message, /token server/);
      assert.ok(!`${e.message} ${e.stack}`.includes(wrong), e.message);
    });

    test('a fresh token the registry refuses (no pull right): REGISTRY_UNAUTHORIZED, not a loop', async () => {
      tokens.options.actions = [];
      try {
        const before = tokens.issued;
        const e = await refusal(pullImage(newStore().imagesDir, `${reg.host}/tok/img:v1`, { creds: { username: 'dave', password: PASSWORD } }));
        assert.equal(e.code, 'REGISTRY_UNAUTHORIZED');
        assert.match(e.message, /token .* was refused/);
        assert.equal(tokens.issued - before, 1);
      } finally {
        delete tokens.options.actions;
      }
    });
  });
});
