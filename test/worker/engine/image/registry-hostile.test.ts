/**
 * What a real registry does not send but a hostile or broken one may: a server on 127.0.0.1
 * of the test's own answers each repository its own way, and each answer is refused with
 * its code and nothing is kept: schema 1, a Docker-Content-Digest that is not the bytes', a
 * manifest too large, a blob longer than its descriptor, non-distributable layers, a
 * redirect loop, a redirect to plain HTTP off loopback, 403.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pullImage } from '../../../../worker/engine/image/pull.js';
import { readTags } from '../../../../worker/engine/image/refs.js';
import { TestStore } from '../../../support/image-store.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI = 'application/vnd.oci.image.manifest.v1+json';

const layer = Buffer.from('ten bytes!');
const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [sha('x')] } }));
const manifest = (layerOver: object = {}) =>
  JSON.stringify({ schemaVersion: 2, mediaType: OCI, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length, ...layerOver }] });

describe('a hostile registry', () => {
  let server: http.Server;
  let host: string;
  const stores: TestStore[] = [];
  before(async () => {
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      const [, repo, kind] = /^\/v2\/h\/([a-z0-9-]+)\/(manifests|blobs)\//.exec(url) ?? [];
      if (url === '/v2/') return void res.writeHead(200).end('{}');
      const send = (body: string | Buffer, headers: Record<string, string> = {}) => res.writeHead(200, { 'content-type': OCI, ...headers }).end(body);
      if (kind === 'blobs') {
        if (url.endsWith(sha(config))) return send(config);
        // "long": twice the bytes the descriptor gives.
        return send(repo === 'long' ? Buffer.concat([layer, layer]) : layer);
      }
      switch (repo) {
        case 'schema1':
          return send(JSON.stringify({ schemaVersion: 1, name: 'h/schema1', tag: 'v1', fsLayers: [] }), { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
        case 'baddigest':
          return send(manifest(), { 'docker-content-digest': `sha256:${'0'.repeat(64)}` });
        case 'huge':
          return send(Buffer.alloc(5 * 1024 * 1024, 0x20));
        case 'long':
          return send(manifest());
        case 'foreign':
          return send(manifest({ mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', urls: ['https://foreign.example/layer'] }));
        case 'loop':
          return void res.writeHead(307, { location: url }).end();
        case 'offloop':
          return void res.writeHead(307, { location: 'http://storage.example/blob' }).end();
        case 'denied':
          return void res.writeHead(403, { 'content-type': 'application/json' }).end('{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}');
        default:
          return void res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    for (const s of stores) s.remove();
  });

  const cases: [string, string, RegExp][] = [
    ['schema1', 'IMAGE_INVALID', /schema 1/],
    ['baddigest', 'DIGEST_MISMATCH', /manifest .* sha256/],
    ['huge', 'IMAGE_INVALID', /larger than 4194304 bytes/],
    ['long', 'DIGEST_MISMATCH', /more than the 10 bytes/],
    ['foreign', 'IMAGE_INVALID', /non-distributable/],
    ['loop', 'REGISTRY_UNAVAILABLE', /more than 5 redirects/],
    ['offloop', 'REGISTRY_UNAVAILABLE', /plain HTTP only to loopback/],
    ['denied', 'REGISTRY_UNAUTHORIZED', /403.*DENIED/],
  ];
  for (const [repo, code, why] of cases) {
    test(`${repo}: ${code}, nothing kept`, async () => {
      const s = new TestStore('faasbox-hostile-');
      stores.push(s);
      await assert.rejects(pullImage(s.imagesDir, `${host}/h/${repo}:v1`, { retries: 0 }), (err: Error & { code?: string }) => {
        assert.equal(err.code, code, err.message);
        assert.match(err.message, why);
        return true;
      });
      assert.deepEqual(readdirSync(path.join(s.imagesDir, 'images', 'sha256')), []);
      assert.deepEqual(readTags(s.imagesDir), {});
      assert.deepEqual(readdirSync(path.join(s.imagesDir, 'tmp')).filter((n) => !n.endsWith('.lock')), []);
      // Only the manifest and config (verified) may be in blobs/; never the layer.
      assert.ok(!readdirSync(path.join(s.imagesDir, 'blobs', 'sha256')).includes(sha(layer).slice(7)));
    });
  }
});
