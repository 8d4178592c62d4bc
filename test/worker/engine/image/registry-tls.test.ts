/**
 * HTTPS to a registry: verified against the system's CAs plus --ca-file, and a certificate
 * the client cannot verify is an error, not a quiet fall back to plain HTTP (the fall back
 * is for a loopback server that speaks no TLS at all).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pullImage } from '../../../../worker/engine/image/pull.js';
import { TestStore } from '../../../support/image-store.js';
import { OciLayout, registrySkip, selfSignedCert, skopeoPush, startRegistry, type TestRegistry } from '../../../support/registry.js';

const skip = registrySkip();

describe('a registry over HTTPS', { skip }, () => {
  let store: TestStore;
  let reg: TestRegistry;
  let cert: string;
  let digest: string;

  before(async () => {
    store = new TestStore('faasbox-pull-tls-');
    const tls = selfSignedCert(store.root);
    cert = tls.cert;
    reg = await startRegistry({ kind: 'none' }, { tls });
    const oci = new OciLayout(path.join(store.root, 'oci'));
    mkdirSync(path.join(store.root, 'files'));
    writeFileSync(path.join(store.root, 'files', 'x'), 'over TLS\n');
    oci.umoci('new', '--image', oci.image('v1'));
    oci.umoci('insert', '--image', oci.image('v1'), path.join(store.root, 'files', 'x'), '/x');
    await skopeoPush(oci.image('v1'), `${reg.host}/tls/img:v1`);
    digest = oci.manifest('v1').digest;
  });
  after(async () => {
    await reg?.stop();
    store?.remove();
  });

  test('a certificate no CA vouches for: REGISTRY_UNAVAILABLE naming it, no plain-HTTP retry', async () => {
    await assert.rejects(pullImage(store.imagesDir, `${reg.host}/tls/img:v1`, { retries: 0 }), (err: Error & { code?: string }) => err.code === 'REGISTRY_UNAVAILABLE' && /self.signed/i.test(err.message));
  });

  test('with its CA as caFile: pulled over HTTPS', async () => {
    const r = await pullImage(store.imagesDir, `${reg.host}/tls/img:v1`, { registries: { caFile: cert } });
    assert.equal(r.manifestDigest, digest);
  });
});
