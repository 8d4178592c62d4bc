/**
 * The containers' state dirs (<stateDir>/containers/<id>: state.json and the mount points
 * of each container's disk, rootfs and slots) live on a tmpfs of the engine's own.
 * Measured on this machine's ext4: the three mkdirs and the state.json write of one
 * container took 0.7 ms and their removal 0.24 ms, a sixth of a whole container start;
 * on tmpfs, 0.014 ms. The tmpfs outlives a crashed worker (mounts belong to the host's
 * mount namespace, not to a process), so the next engine on the state dir still finds what
 * to collect. It is unmounted once no container is left in it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { MS_NODEV, MS_NOEXEC, MS_NOSUID, type Sys } from './sys/index.js';

/** The tmpfs's source name, which tells our mount from anything else mounted there. */
export const STATE_MOUNT_SOURCE = 'faasbox-state';

/** The source of the mount exactly at dir, if any ("-" fields of /proc/self/mountinfo). */
export function mountSourceAt(dir: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | undefined {
  let source: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== dir) continue;
    const sep = fields.indexOf('-');
    // The last mount on a point is the one in effect.
    if (sep > 0) source = fields[sep + 2];
  }
  return source;
}

function isEmpty(dir: string): boolean {
  try {
    return readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}

/**
 * Makes dir our tmpfs if it is not already. A dir that holds entries without being our
 * mount (state from before, on the disk) is left as it is: mounting over it would hide
 * containers from garbage collection. Returns whether dir is our tmpfs.
 */
export function ensureStateMount(sys: Sys, dir: string): boolean {
  if (mountSourceAt(dir) === STATE_MOUNT_SOURCE) return true;
  if (!isEmpty(dir)) return false;
  try {
    // Small: it holds directories, empty mount points and state files only.
    sys.mount(STATE_MOUNT_SOURCE, dir, 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, 'mode=0700,size=16m');
    return true;
  } catch {
    return false; // no tmpfs here: the disk works, only slower
  }
}

/** Unmounts our tmpfs at dir once nothing is left in it; busy or not ours, it stays. */
export function releaseStateMount(sys: Sys, dir: string): void {
  if (mountSourceAt(dir) !== STATE_MOUNT_SOURCE || !isEmpty(dir)) return;
  try {
    sys.umount(dir, 0);
  } catch {
    // EBUSY: a container is being made in it right now; the next release takes it.
  }
}
