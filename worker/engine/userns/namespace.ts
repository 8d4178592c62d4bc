/**
 * The user-namespace side of a container in userns mode: writing a range's id maps into
 * a process's namespace, and making an empty namespace with those maps whose fd gives
 * idmapped mounts their mapping (native/protocol.h, "User namespaces").
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { EngineError } from '../errors.js';
import { initBinaryPath } from '../native/protocol.js';
import type { IdRange } from './ranges.js';

/**
 * Container ids 0..size-1 to host ids hostId..: the same map for uids and gids. setgroups
 * is denied first (the kernel requires it before an unprivileged gid_map, and it keeps a
 * process from dropping a group that a file's mode denies access to).
 */
export function writeIdMaps(pid: number, range: IdRange): void {
  const map = `0 ${range.hostId} ${range.size}\n`;
  writeFileSync(`/proc/${pid}/setgroups`, 'deny');
  writeFileSync(`/proc/${pid}/uid_map`, map);
  writeFileSync(`/proc/${pid}/gid_map`, map);
}

/** How long an idmap namespace may take to appear: a spawn, on a loaded 2-core machine. */
const HOLDER_TIMEOUT_MS = 10_000;

/**
 * An fd of a new user namespace mapped as range (the caller closes it). Made by
 * `faasbox-init --userns`, which exits once the fd is open: the fd keeps the namespace.
 */
export async function idmapNamespace(range: IdRange): Promise<number> {
  const child = spawn(initBinaryPath(), ['--userns'], { stdio: ['pipe', 'pipe', 'pipe'], env: {}, argv0: 'faasbox-init' });
  try {
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${HOLDER_TIMEOUT_MS} ms`)), HOLDER_TIMEOUT_MS);
      child.stdout.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('error', reject);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code}${err ? `: ${err.trim()}` : ''}`));
      });
    }).catch((e: Error) => {
      throw new EngineError('CREATE_FAILED', `could not make a user namespace for idmapped mounts: faasbox-init --userns ${e.message}`, { code: 'USERNS_UNSUPPORTED' });
    });
    writeIdMaps(child.pid!, range);
    return openSync(`/proc/${child.pid}/ns/user`, 'r');
  } finally {
    child.stdin.end();
    child.stdout.destroy();
  }
}

/**
 * Idmap namespaces by range, kept open: a range freed by one container is leased again
 * by a later one (ranges.ts hands out the lowest free one), whose mounts then need no
 * new namespace. Making one is a process spawn from the worker: measured on this host
 * (30 interleaved creates each, p50), a userns create took 4.2-7.6 ms with a namespace
 * made per container and 2.8-3.3 ms with this cache, against 0.9-1.1 ms without userns.
 * The namespaces hold no process and no privilege (empty, owned by the worker's root);
 * at most `max` fds are kept.
 */
export class IdmapNamespaces {
  private readonly fds = new Map<number, Promise<number>>();

  constructor(private readonly max = 256) {}

  /** An fd for range's namespace; the cache owns it (do not close). */
  fdFor(range: IdRange): Promise<number> {
    const key = range.hostId;
    let fd = this.fds.get(key);
    if (!fd) {
      fd = idmapNamespace(range);
      this.fds.set(key, fd);
      fd.catch(() => this.fds.delete(key));
      if (this.fds.size > this.max) {
        // The oldest entry (Map order); one still being made is closed once it is.
        const [oldest, p] = this.fds.entries().next().value as [number, Promise<number>];
        this.fds.delete(oldest);
        void p.then((n) => closeSync(n), () => {});
      }
    }
    return fd;
  }

  close(): void {
    for (const p of this.fds.values()) void p.then((n) => closeSync(n), () => {});
    this.fds.clear();
  }
}

/**
 * Whether this kernel can stack OverlayFS on idmapped lower layers: idmapped mounts came
 * in 5.12, overlayfs accepts idmapped layers from 5.19 (it refused them with EINVAL before).
 */
export function idmappedOverlaySupported(kernel = release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernel);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 5 || (major === 5 && minor >= 19);
}

export class UsernsUnsupportedError extends EngineError {
  constructor(feature: string, kernel = release()) {
    super('USERNS_UNSUPPORTED', `user-namespace mode needs ${feature}; this kernel is ${kernel}. Run the function without userns, or on a newer kernel (shared layers are never chowned instead)`, { feature, kernel });
  }
}
