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
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { hostPlatform } from '../../worker/engine/image/registry/manifest.js';
import { OciLayout, skopeoPush } from './registry.js';

export const EXPECTED_LS = 'stays\n--\nupper\nkept\n';
export const LS_CMD = 'ls -A /data; echo --; ls -A /opq; cat /data/stays';

/**
 * The files the test images' layers are made of (under `files`): data/gone (a whiteout
 * above deletes it), data/stays, opq-lower and opq-upper (an opaque directory above hides
 * the lower one's file), and an /etc/passwd with a named user.
 */
export function writeLayerFiles(files: string): void {
  mkdirSync(path.join(files, 'data'), { recursive: true });
  writeFileSync(path.join(files, 'data', 'gone'), 'deleted above\n');
  writeFileSync(path.join(files, 'data', 'stays'), 'kept\n');
  mkdirSync(path.join(files, 'opq-lower'));
  writeFileSync(path.join(files, 'opq-lower', 'lower'), 'hidden above\n');
  mkdirSync(path.join(files, 'opq-upper'));
  writeFileSync(path.join(files, 'opq-upper', 'upper'), 'visible\n');
  writeFileSync(path.join(files, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nsvc:x:2000:2001::/srv:/bin/sh\n');
}

export function buildTestImages(dir: string, busybox: string): OciLayout {
  const oci = new OciLayout(dir);
  const files = path.join(dir, 'files');
  writeLayerFiles(files);
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

/** The bytes of a manifest as the registry serves it (anonymous). */
export function getManifest(host: string, repo: string, tag: string, accept: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const [h, port] = host.split(':');
    http
      .get({ host: h, port: Number(port), path: `/v2/${repo}/manifests/${tag}`, headers: { accept } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`GET manifest ${repo}:${tag} answered ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/**
 * v1 (the host's platform) and arm under repo:native and repo:arm, and an index over both as
 * repo:multi: an OCI index, or (docker) a Docker manifest list over schema 2 manifests.
 */
export async function pushIndex(oci: OciLayout, host: string, repo: string, docker = false): Promise<{ index: string; native: string; arm: string }> {
  const format = docker ? ({ format: 'v2s2' } as const) : {};
  await skopeoPush(oci.image('v1'), `${host}/${repo}:native`, format);
  await skopeoPush(oci.image('arm'), `${host}/${repo}:arm`, format);
  const childType = docker ? DOCKER_V2 : OCI_MANIFEST;
  // The children as the registry holds them (skopeo wrote them; for v2s2 it converted them).
  const native = await getManifest(host, repo, 'native', childType);
  const arm = await getManifest(host, repo, 'arm', childType);
  const { os, architecture } = hostPlatform();
  const mediaType = docker ? 'application/vnd.docker.distribution.manifest.list.v2+json' : 'application/vnd.oci.image.index.v1+json';
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: [
      { mediaType: childType, digest: sha256(arm), size: arm.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: childType, digest: sha256(native), size: native.length, platform: { os, architecture } },
    ],
  });
  const status = await putManifest(host, repo, 'multi', mediaType, body);
  if (status !== 201) throw new Error(`PUT of the index answered ${status}`);
  return { index: sha256(body), native: sha256(native), arm: sha256(arm) };
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
