/**
 * A real registry for a test: Debian's docker-registry (distribution 2.8) on 127.0.0.1 on a
 * free port, with a config and a storage directory of the test's own, stopped by its PID.
 * Modes: anonymous, htpasswd Basic (bcrypt, `htpasswd -B`), token auth (a TokenServer's
 * realm, issuer and certificate). Images are made by umoci and pushed by skopeo
 * (third-party tools, not faasbox): see OciLayout.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, stopChild } from '../../cli/redis.js';
import { eventually } from './eventually.js';

const execFileAsync = promisify(execFile);

export const REGISTRY_BIN = '/usr/bin/docker-registry';

/** Why the registry tests cannot run here, or false when they can. */
export function registrySkip(): string | false {
  const missing = [REGISTRY_BIN, 'skopeo', 'umoci', 'htpasswd', 'openssl'].filter((b) => spawnSync(b, ['--help'], { stdio: 'ignore' }).error !== undefined);
  return missing.length ? `not installed: ${missing.join(', ')} (scripts/setup.sh installs them from Debian)` : false;
}

export type RegistryAuth = { kind: 'none' } | { kind: 'htpasswd'; user: string; password: string } | { kind: 'token'; realm: string; service: string; issuer: string; certFile: string };

export interface TestRegistry {
  /** host:port, as a reference names it. */
  host: string;
  port: number;
  dir: string;
  /** The registry's storage root (docker/registry/v2/...). */
  storage: string;
  /** The data file of a blob in the registry's storage. */
  blobData(digest: string): string;
  stop(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 (IP SAN), made by openssl in dir: the registry's TLS pair and the CA a client trusts. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'tls-cert.pem');
  const key = path.join(dir, 'tls-key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

export async function startRegistry(auth: RegistryAuth = { kind: 'none' }, opts: { tls?: { cert: string; key: string } } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-registry-'));
  const storage = path.join(dir, 'storage');
  mkdirSync(storage);
  const port = await freePort();
  let authYaml = '';
  if (auth.kind === 'htpasswd') {
    const file = path.join(dir, 'htpasswd');
    execFileSync('htpasswd', ['-B', '-b', '-c', file, auth.user, auth.password], { stdio: 'ignore' });
    authYaml = `auth:\n  htpasswd:\n    realm: faasbox-test\n    path: ${file}\n`;
  } else if (auth.kind === 'token') {
    authYaml = `auth:\n  token:\n    realm: ${auth.realm}\n    service: ${auth.service}\n    issuer: ${auth.issuer}\n    rootcertbundle: ${auth.certFile}\n`;
  }
  const config = path.join(dir, 'config.yml');
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: faasbox-test-secret\n${opts.tls ? `  tls:\n    certificate: ${opts.tls.cert}\n    key: ${opts.tls.key}\n` : ''}${authYaml}`,
  );
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const stop = async () => {
    await stopChild(child, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually(
      () =>
        new Promise<boolean>((resolve) => {
          if (child.exitCode !== null) return resolve(true);
          const req = http.get({ host: '127.0.0.1', port, path: '/v2/' }, (res) => {
            res.resume();
            resolve(true);
          });
          req.on('error', () => resolve(false));
        }),
      20_000,
      'the registry to listen',
    );
    if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}: ${stderr}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    host: `127.0.0.1:${port}`,
    port,
    dir,
    storage,
    blobData: (digest) => {
      const hex = digest.replace(/^sha256:/, '');
      return path.join(storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    },
    stop,
  };
}

/**
 * skopeo copy of an OCI layout's image to the registry (plain HTTP, as loopback is). Not
 * execFileSync: a token server in this process must be able to answer skopeo meanwhile.
 */
export async function skopeoPush(layoutImage: string, dest: string, opts: { format?: 'v2s2' | 'oci'; creds?: string } = {}): Promise<void> {
  const args = ['copy', '--quiet', '--dest-tls-verify=false'];
  if (opts.format) args.push('--format', opts.format);
  if (opts.creds) args.push('--dest-creds', opts.creds);
  args.push(`oci:${layoutImage}`, `docker://${dest}`);
  await execFileAsync('skopeo', args, { timeout: 120_000 });
}

/** An OCI layout made with umoci, in a directory of the test's own. */
export class OciLayout {
  readonly layout: string;
  constructor(readonly dir: string) {
    this.layout = path.join(dir, 'layout');
    execFileSync('umoci', ['init', '--layout', this.layout]);
  }
  umoci(...args: string[]): void {
    execFileSync('umoci', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  }
  image(tag: string): string {
    return `${this.layout}:${tag}`;
  }
  /** The manifest (and its digest) of tag, from the layout's index. */
  manifest(tag: string): { digest: string; manifest: { config: { digest: string; size: number }; layers: { digest: string; size: number; mediaType: string }[] } } {
    const index = JSON.parse(readFileSync(path.join(this.layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
    if (!d) throw new Error(`no tag ${tag} in ${this.layout}`);
    return { digest: d.digest, manifest: JSON.parse(readFileSync(path.join(this.layout, 'blobs/sha256', d.digest.slice(7)), 'utf8')) };
  }
}

/**
 * The layout's image with its layers recompressed (zstd) or decompressed (plain tar): skopeo
 * copies it into a dir: transport first (to a docker:// destination it would keep gzip, or
 * gzip what is plain), then pushes that.
 */
export async function pushRecompressed(layoutImage: string, work: string, host: string, name: string, compression: 'zstd' | 'none'): Promise<void> {
  const dir = mkdtempSync(path.join(work, `skopeo-dir-${compression}-`));
  const args = ['copy', '--quiet', ...(compression === 'zstd' ? ['--dest-compress', '--dest-compress-format', 'zstd'] : ['--dest-decompress']), `oci:${layoutImage}`, `dir:${dir}`];
  await execFileAsync('skopeo', args, { timeout: 120_000 });
  if (compression === 'zstd') {
    await execFileAsync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `dir:${dir}`, `docker://${host}/${name}`], { timeout: 120_000 });
    return;
  }
  // Plain layers by the registry API itself: every blob (dir: names them by hex), then the manifest.
  const manifest = readFileSync(path.join(dir, 'manifest.json'));
  const m = JSON.parse(manifest.toString('utf8')) as { mediaType?: string; config: { digest: string }; layers: { digest: string }[] };
  const [repo, tag] = name.split(':') as [string, string];
  for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
    const bytes = readFileSync(path.join(dir, d.slice(7)));
    const start = await apiRequest(host, 'POST', `/v2/${repo}/blobs/uploads/`, Buffer.alloc(0));
    const loc = new URL(String(start.headers.location), `http://${host}`);
    loc.searchParams.set('digest', d);
    const put = await apiRequest(host, 'PUT', loc.pathname + loc.search, bytes, 'application/octet-stream');
    if (put.status !== 201) throw new Error(`blob upload of ${d} answered ${put.status}`);
  }
  const put = await apiRequest(host, 'PUT', `/v2/${repo}/manifests/${tag}`, manifest, m.mediaType ?? 'application/vnd.oci.image.manifest.v1+json');
  if (put.status !== 201) throw new Error(`manifest PUT answered ${put.status}`);
}

function apiRequest(host: string, method: string, p: string, body: Buffer, contentType?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const [h, port] = host.split(':');
    const req = http.request({ host: h, port: Number(port), method, path: p, headers: { 'content-length': body.length, ...(contentType ? { 'content-type': contentType } : {}) } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on('error', reject);
    req.end(body);
  });
}
