/**
 * A container's root: the image layers as read-only overlayfs lower dirs (shared by
 * every container), and a per-container upper/work dir on a tmpfs whose size is the
 * container's disk quota (cgroups cannot bound disk). Discarding the tmpfs is all it
 * takes to be back at the pristine snapshot: the next container over the same layers
 * sees none of it. Mounts go through the Sys interface (syscalls).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, type Sys } from '../sys/index.js';
import type { ContainerPaths } from '../config.js';

export interface RootfsPlan {
  paths: ContainerPaths;
  lowerDirs: string[];
  diskBytes: number;
  /** Mount source name, so that garbage collection can recognise faasbox's mounts. */
  tag: string;
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
  // A single lower dir is allowed; overlayfs needs lowerdir to be non-empty.
  const data = `lowerdir=${plan.lowerDirs.join(':')},upperdir=${paths.upper},workdir=${paths.work}`;
  sys.mount(plan.tag, paths.rootfs, 'overlay', MS_NOSUID | MS_NODEV, data);
}

/** Idempotent: unmounts whatever is still mounted and removes the directories. */
export function unmountRootfs(sys: Sys, paths: ContainerPaths): void {
  // MNT_DETACH: a process of a dying container may still pin the mount for a moment.
  sys.umount(paths.rootfs, MNT_DETACH);
  sys.umount(paths.disk, MNT_DETACH);
  rmSync(paths.rootfs, { recursive: true, force: true });
  rmSync(paths.disk, { recursive: true, force: true });
}
