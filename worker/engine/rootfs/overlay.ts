/**
 * A container's root: the image layers as read-only overlayfs lower dirs (shared by
 * every container), and a per-container upper/work dir on a tmpfs whose size is the
 * container's disk quota (cgroups cannot bound disk). Discarding the tmpfs is all it
 * takes to be back at the pristine snapshot: the next container over the same layers
 * sees none of it. Mounts go through the Sys interface (syscalls).
 */
import { chownSync, existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, SyscallError, type Sys } from '../sys/index.js';
import { mountIdmapped } from '../sys/idmap.js';
import { mountsUnder } from '../mounts.js';
import { UsernsUnsupportedError } from '../userns/namespace.js';
import type { ContainerPaths } from '../config.js';

export interface RootfsPlan {
  paths: ContainerPaths;
  lowerDirs: string[];
  diskBytes: number;
  /** Mount source name, so that garbage collection can recognise faasbox's mounts. */
  tag: string;
  /**
   * userns mode: each lower dir is seen through an idmapped mount with this namespace's
   * mapping (on-disk root = the container's root), and the upper dir belongs to hostId.
   * The shared layers themselves are never chowned.
   */
  idmap?: { usernsFd: number; hostId: number };
}

/** Mounts the quota tmpfs and the overlay. On failure, undoes what it did and rethrows. */
export function mountRootfs(sys: Sys, plan: RootfsPlan): void {
  const { paths } = plan;
  mkdirSync(paths.disk, { recursive: true });
  mkdirSync(paths.rootfs, { recursive: true });
  sys.mount(plan.tag, paths.disk, 'tmpfs', MS_NOSUID | MS_NODEV, `size=${plan.diskBytes},mode=0700`);
  try {
    mountOverlay(sys, plan);
  } catch (err) {
    sys.umount(paths.disk, MNT_DETACH);
    throw err;
  }
}

function mountOverlay(sys: Sys, plan: RootfsPlan): void {
  const { paths } = plan;
  mkdirSync(paths.upper, { mode: 0o755 });
  mkdirSync(paths.work, { mode: 0o700 });
  try {
    const lowerDirs = plan.idmap ? idmappedLayers(plan.lowerDirs, paths.layers, plan.idmap) : plan.lowerDirs;
    // The upper dir is this container's alone: its root becomes the container root's.
    if (plan.idmap) chownSync(paths.upper, plan.idmap.hostId, plan.idmap.hostId);
    // A single lower dir is allowed; overlayfs needs lowerdir to be non-empty.
    const data = `lowerdir=${lowerDirs.join(':')},upperdir=${paths.upper},workdir=${paths.work}`;
    sys.mount(plan.tag, paths.rootfs, 'overlay', MS_NOSUID | MS_NODEV, data);
  } catch (err) {
    if (plan.idmap) unmountLayers(sys, paths);
    // Before 5.19 overlayfs refuses idmapped layers with EINVAL.
    if (plan.idmap && err instanceof SyscallError && err.errno === 22) throw new UsernsUnsupportedError('OverlayFS over idmapped layers (Linux 5.19+)');
    throw err;
  }
}

/** Idmapped views of the lower dirs under dir (0, 1, ...: top first, as given). */
function idmappedLayers(lowerDirs: string[], dir: string, idmap: { usernsFd: number }): string[] {
  mkdirSync(dir, { mode: 0o700 });
  return lowerDirs.map((lower, i) => {
    const view = path.join(dir, String(i));
    mkdirSync(view);
    try {
      mountIdmapped(lower, view, idmap.usernsFd, { readonly: true });
    } catch (err) {
      if (err instanceof SyscallError && err.errno === 38) throw new UsernsUnsupportedError('idmapped mounts (Linux 5.12+)');
      // EINVAL: the layer's filesystem has no idmapped mounts (tmpfs before Linux 6.3).
      if (err instanceof SyscallError && err.errno === 22) throw new UsernsUnsupportedError(`idmapped mounts of the filesystem holding ${lower} (tmpfs has them from Linux 6.3)`);
      throw err;
    }
    return view;
  });
}

/** Detaches the idmapped views before their dir is removed: rm must never walk into a shared layer. */
function unmountLayers(sys: Sys, paths: ContainerPaths): void {
  if (!existsSync(paths.layers)) return; // not a userns container: no mountinfo read on its delete
  for (const m of mountsUnder(paths.layers)) sys.umount(m, MNT_DETACH);
  // rmdir, never a recursive rm: a view still mounted makes it fail instead of walking into the layer.
  for (const name of readdirSync(paths.layers)) rmdirSync(path.join(paths.layers, name));
  rmdirSync(paths.layers);
}

/** Idempotent: unmounts whatever is still mounted and removes the directories. */
export function unmountRootfs(sys: Sys, paths: ContainerPaths): void {
  // MNT_DETACH: a process of a dying container may still pin the mount for a moment.
  sys.umount(paths.rootfs, MNT_DETACH);
  sys.umount(paths.disk, MNT_DETACH);
  unmountLayers(sys, paths);
  rmSync(paths.rootfs, { recursive: true, force: true });
  rmSync(paths.disk, { recursive: true, force: true });
}
