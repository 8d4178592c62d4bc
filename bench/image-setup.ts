/**
 * What `bench image` stands on: a docker-registry (Debian's distribution 2.8) on 127.0.0.1
 * with a config of its own, a counting TCP proxy in front of it (bytes the registry sent,
 * for the incremental pull), and faasbox's nodejs20 runtime image as an OCI layout
 * directory written from the image store's blobs (its layer gzip-compressed, as a
 * registry's images are), so that skopeo can push it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { blobPath } from '../worker/engine/image/paths.js';
import type { ImageRecord } from '../worker/engine/image/record.js';
import { freePort } from '../cli/redis.js';

const run = promisify(execFile);

export interface LocalRegistry {
  port: number;
  host: string;
  stop(): Promise<void>;
}

/** docker-registry serving dir on 127.0.0.1, anonymous, plain HTTP; ready when /v2/ answers. */
export async function startRegistry(dir: string): Promise<LocalRegistry> {
  const port = await freePort();
  mkdirSync(path.join(dir, 'storage'), { recursive: true });
  const config = path.join(dir, 'config.yml');
  writeFileSync(
    config,
    ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${path.join(dir, 'storage')}`, 'http:', `  addr: 127.0.0.1:${port}`, ''].join('\n'),
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGTERM');
    await exited;
  };
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || i > 100) {
      await stop();
      throw new Error(`docker-registry did not start on 127.0.0.1:${port}: ${stderr.trim().slice(0, 400)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, host: `127.0.0.1:${port}`, stop };
}

/** A TCP proxy to 127.0.0.1:target counting the bytes the target sent back. */
export interface CountingProxy {
  host: string;
  /** Bytes from the registry to clients since the last reset. */
  bytes(): number;
  reset(): void;
  stop(): Promise<void>;
}

export async function countingProxy(target: number): Promise<CountingProxy> {
  let count = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    upstream.on('data', (d: Buffer) => (count += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    bytes: () => count,
    reset: () => {
      count = 0;
    },
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function gzipBlob(src: string, tmp: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(createReadStream(src), createGzip({ level: 6 }), count, createWriteStream(tmp));
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * An OCI image layout at dir holding record (a single-layer image of the store at
 * imagesDir) as tag: the config blob as it is, the layer gzip-compressed (the config's
 * diff_ids name the uncompressed tar, so they hold), a new manifest naming both.
 */
export async function writeOciLayout(imagesDir: string, record: ImageRecord, dir: string, tag: string): Promise<void> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const configBytes = readFileSync(blobPath(imagesDir, record.configDigest));
  copyFileSync(blobPath(imagesDir, record.configDigest), path.join(blobs, record.configDigest.slice(7)));
  const layers = [];
  for (const l of record.layers) {
    const tmp = path.join(dir, `layer-${randomBytes(4).toString('hex')}.tmp`);
    const gz = await gzipBlob(blobPath(imagesDir, l.digest), tmp);
    await run('mv', [tmp, path.join(blobs, gz.digest.slice(7))]);
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...gz });
  }
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: record.configDigest, size: configBytes.length }, layers }));
  writeFileSync(path.join(blobs, sha(manifest).slice(7)), manifest);
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
}

/**
 * A file of `bytes` that is random-ish but compressible (8 KiB of random bytes repeated 8
 * times per 64 KiB: gzip's 32 KiB window finds the repeats, about 8:1), written streaming.
 */
export async function compressibleFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  for (let done = 0; done < bytes; ) {
    const seed = randomBytes(8192);
    const block = Buffer.concat(Array.from({ length: 8 }, () => seed)).subarray(0, Math.min(65536, bytes - done));
    done += block.length;
    if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** A command to its end; its stderr in the error when it fails. */
export async function sh(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { maxBuffer: 64 << 20, ...(env ? { env } : {}) });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim().slice(0, 600)}`);
  }
}
