/**
 * The images the puller's tests pull, made by umoci (not faasbox) in an OCI layout:
 *
 *   v1   busybox | /data (gone, stays) | /opq/lower | /etc/passwd | whiteout /data/gone
 *        | opaque /opq with /opq/upper; config: user svc, workdir /data, env, entrypoint+cmd
 *   v2   v1 plus one layer (/extra): shares all but its top layer with v1
 *   arm  one small layer, config architecture arm64 (for an index's second platform)
 *   big  busybox plus 4 MiB of random bytes: a blob large enough to cut in the middle
 *
 * pushed with skopeo; an index over v1 (the host's platform) and arm is PUT by hand.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { hostPlatform } from '../../worker/engine/image/registry/manifest.js';
import { OciLayout, skopeoPush } from './registry.js';

export const EXPECTED_LS = 'stays\n--\nupper\nkept\n';
export const LS_CMD = 'ls -A /data; echo --; ls -A /opq; cat /data/stays';

export function buildTestImages(dir: string, busybox: string): OciLayout {
  const oci = new OciLayout(dir);
  const files = path.join(dir, 'files');
  mkdirSync(path.join(files, 'data'), { recursive: true });
  writeFileSync(path.join(files, 'data', 'gone'), 'deleted above\n');
  writeFileSync(path.join(files, 'data', 'stays'), 'kept\n');
  mkdirSync(path.join(files, 'opq-lower'));
  writeFileSync(path.join(files, 'opq-lower', 'lower'), 'hidden above\n');
  mkdirSync(path.join(files, 'opq-upper'));
  writeFileSync(path.join(files, 'opq-upper', 'upper'), 'visible\n');
  writeFileSync(path.join(files, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nsvc:x:2000:2001::/srv:/bin/sh\n');
  writeFileSync(path.join(files, 'extra'), 'only in v2\n');
  writeFileSync(path.join(files, 'arm-marker'), 'arm64 image\n');
  writeFileSync(path.join(files, 'random'), randomBytes(4 * 1024 * 1024));
  const v1 = oci.image('v1');
  oci.umoci('new', '--image', v1);
  oci.umoci('insert', '--image', v1, busybox, '/');
  oci.umoci('insert', '--image', v1, path.join(files, 'data'), '/data');
  oci.umoci('insert', '--image', v1, path.join(files, 'opq-lower'), '/opq');
  oci.umoci('insert', '--image', v1, path.join(files, 'passwd'), '/etc/passwd');
  oci.umoci('insert', '--image', v1, '--whiteout', '/data/gone');
  oci.umoci('insert', '--image', v1, '--opaque', path.join(files, 'opq-upper'), '/opq');
  const { os, architecture } = hostPlatform();
  oci.umoci('config', '--image', v1, '--os', os, '--architecture', architecture, '--config.user', 'svc', '--config.workingdir', '/data', '--config.env', 'FROM=umoci', '--config.entrypoint', '/bin/sh', '--config.cmd', '-c', '--config.cmd', 'echo "$(id -u):$(id -g) $PWD $FROM"');
  oci.umoci('tag', '--image', v1, 'v2');
  oci.umoci('insert', '--image', oci.image('v2'), path.join(files, 'extra'), '/extra');
  const arm = oci.image('arm');
  oci.umoci('new', '--image', arm);
  oci.umoci('insert', '--image', arm, path.join(files, 'arm-marker'), '/arm-marker');
  oci.umoci('config', '--image', arm, '--os', 'linux', '--architecture', 'arm64');
  const big = oci.image('big');
  oci.umoci('new', '--image', big);
  oci.umoci('insert', '--image', big, busybox, '/');
  oci.umoci('insert', '--image', big, path.join(files, 'random'), '/random');
  oci.umoci('config', '--image', big, '--os', os, '--architecture', architecture);
  return oci;
}

/** PUTs a manifest (an index, say) to an anonymous registry. */
export function putManifest(host: string, repo: string, tag: string, mediaType: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const [h, port] = host.split(':');
    const req = http.request({ host: h, port: Number(port), method: 'PUT', path: `/v2/${repo}/manifests/${tag}`, headers: { 'content-type': mediaType } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** v1 (the host's platform) and arm under repo:native and repo:arm, and an OCI index over both as repo:multi. */
export async function pushIndex(oci: OciLayout, host: string, repo: string): Promise<{ index: string; native: string; arm: string }> {
  await skopeoPush(oci.image('v1'), `${host}/${repo}:native`);
  await skopeoPush(oci.image('arm'), `${host}/${repo}:arm`);
  const native = oci.manifest('v1').digest;
  const arm = oci.manifest('arm').digest;
  // skopeo pushes an OCI layout's manifests byte for byte: the sizes are of the layout's blobs.
  const size = (digest: string) => readFileSync(path.join(oci.layout, 'blobs/sha256', digest.slice(7))).length;
  const { os, architecture } = hostPlatform();
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm, size: size(arm), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: native, size: size(native), platform: { os, architecture } },
    ],
  });
  const status = await putManifest(host, repo, 'multi', mediaType, body);
  if (status !== 201) throw new Error(`PUT of the index answered ${status}`);
  return { index: `sha256:${createHash('sha256').update(body).digest('hex')}`, native, arm };
}
