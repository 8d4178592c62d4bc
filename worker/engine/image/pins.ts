/**
 * Pins: what keeps an image in use from being pruned. A container whose layers come from
 * the store has a lease file <images>/refs/<container-id> naming the layers (their diff_ids)
 * and, when known, the image (its manifest digest). The engine writes it at create, under
 * the store's shared lock and after checking that every layer is still there, and removes
 * it at delete; a crashed owner's leases go with its containers in the engine's gc. Prune
 * keeps the records, blobs and layers a live lease names.
 *
 * A lease is written in place, not aside and renamed (a rename costs ~0.3 ms on ext4, on
 * every container create): it is written under the shared lock, and the only reader that
 * acts on leases, prune, reads them under the exclusive one, so none sees half of one.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ImageNotFoundError } from '../../../common/errors.js';
import { withStoreLock } from './store-lock.js';
import { digestHex, imagesDirOf, layerDir } from './paths.js';

export interface ImagePin {
  /** The image the container was made from, when the caller said (ContainerSpec.rootfs.image). */
  manifestDigest?: string;
  /** The store's layers it stands on, bottom first. */
  diffIds: string[];
}

export interface Lease extends ImagePin {
  container: string;
  createdAt: string;
}

export const refsDir = (imagesDir: string): string => path.join(imagesDir, 'refs');
const leasePath = (imagesDir: string, container: string): string => path.join(refsDir(imagesDir), container);

/**
 * What a container with these layer directories pins in the store of stateDir: the layers
 * that are the store's own (layers/sha256/<hex>), and the image if named. Layers from
 * elsewhere (a test's directory, a function's code) pin nothing. Undefined: nothing to pin.
 */
export function pinOf(stateDir: string, layers: readonly string[], manifestDigest?: string): ImagePin | undefined {
  const root = path.join(imagesDirOf(stateDir), 'layers', 'sha256');
  const diffIds: string[] = [];
  for (const l of layers) {
    if (path.dirname(l) === root && /^[0-9a-f]{64}$/.test(path.basename(l))) diffIds.push(`sha256:${path.basename(l)}`);
  }
  if (manifestDigest !== undefined) digestHex(manifestDigest, 'rootfs.image');
  if (diffIds.length === 0 && manifestDigest === undefined) return undefined;
  return manifestDigest === undefined ? { diffIds } : { manifestDigest, diffIds };
}

/**
 * Writes container's lease. Under the shared lock, so that a prune has either finished
 * (and a layer it removed is found missing here: IMAGE_NOT_FOUND) or waits for the lease.
 */
export async function pinImage(imagesDir: string, container: string, pin: ImagePin): Promise<void> {
  await withStoreLock(imagesDir, 'shared', () => {
    for (const d of pin.diffIds) {
      if (!statSync(layerDir(imagesDir, d), { throwIfNoEntry: false })?.isDirectory()) {
        throw new ImageNotFoundError(pin.manifestDigest ?? d, `its layer ${d} was removed (faasbox image prune) after the image was prepared; prepare it again`);
      }
    }
    const dir = refsDir(imagesDir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lease: Lease = { container, ...pin, createdAt: new Date().toISOString() };
    writeFileSync(leasePath(imagesDir, container), JSON.stringify(lease), { mode: 0o600 });
  });
}

export function unpinImage(imagesDir: string, container: string): void {
  rmSync(leasePath(imagesDir, container), { force: true });
}

/** Every lease, by container id; an unreadable one (half-written by a crash) is skipped. */
export function readLeases(imagesDir: string): Lease[] {
  let names: string[];
  try {
    names = readdirSync(refsDir(imagesDir));
  } catch {
    return [];
  }
  const out: Lease[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    try {
      const l = JSON.parse(readFileSync(leasePath(imagesDir, name), 'utf8')) as Lease;
      if (Array.isArray(l.diffIds)) out.push({ ...l, container: name });
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

/** Removes the leases of containers for which live() is false; returns their ids. */
export function collectLeases(imagesDir: string, live: (container: string) => boolean): string[] {
  let names: string[];
  try {
    names = readdirSync(refsDir(imagesDir));
  } catch {
    return [];
  }
  const freed: string[] = [];
  for (const name of names) {
    if (live(name)) continue;
    rmSync(path.join(refsDir(imagesDir), name), { force: true });
    freed.push(name);
  }
  return freed;
}
