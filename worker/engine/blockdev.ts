/**
 * The block device whose I/O a container's io limits throttle: the one holding the state
 * dir (and the image layers below it, which is where a container's reads of its image go).
 *
 * What is throttled: reads that miss the page cache and writeback of the layers' and the
 * state dir's filesystem, charged to the container's cgroup. A container's writes land in
 * its upper dir, a tmpfs (its disk quota): they never reach a block device, so writeBps
 * bounds only writes to bind-mounted host dirs on the same device. A state dir on tmpfs
 * or another memory-backed filesystem has no device at all: io limits are refused there.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

/** "MAJ:MIN" of a dev_t (glibc's gnu_dev_major/minor). */
export function devName(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/**
 * The whole disk behind p's filesystem, or undefined (with why) when there is none.
 * Partitions are mapped to their disk: io.max and blkio.throttle refuse a partition.
 */
export function blockDeviceOf(p: string, sysRoot = '/sys'): { device: string } | { device?: undefined; why: string } {
  try {
    return findDisk(p, sysRoot);
  } catch (err) {
    return { why: `cannot tell which disk holds ${p}: ${(err as Error).message}` };
  }
}

function findDisk(p: string, sysRoot: string): { device: string } | { device?: undefined; why: string } {
  let dev = devName(statSync(p, { bigint: true }).dev);
  if (dev.startsWith('0:')) {
    // An anonymous device (tmpfs, overlay, btrfs subvolumes, NFS): a block device only if
    // the mount's source is one.
    const source = mountSourceOf(p);
    if (!source?.startsWith('/dev/') || !existsSync(source)) return { why: `${p} is on ${source ?? 'a filesystem'} without a block device (tmpfs, overlay, network)` };
    const st = statSync(source, { bigint: true });
    if (!st.isBlockDevice()) return { why: `${source}, the source of ${p}'s filesystem, is not a block device` };
    dev = devName(st.rdev);
  }
  const sys = path.join(sysRoot, 'dev/block', dev);
  if (!existsSync(sys)) return { why: `block device ${dev} (holding ${p}) is not in ${sysRoot}/dev/block` };
  if (existsSync(path.join(sys, 'partition'))) {
    // /sys/dev/block/M:m links to .../block/vda/vda1: the disk is the parent directory.
    const disk = path.dirname(realpathSync(sys));
    dev = readFileSync(path.join(disk, 'dev'), 'utf8').trim();
  }
  return { device: dev };
}

/** The source field of the mount holding p (the longest mount point that is a prefix of it). */
function mountSourceOf(p: string): string | undefined {
  const real = realpathSync(p);
  let best: { point: string; source: string } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const point = f[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const dash = f.indexOf('-');
    if (!point || dash < 0) continue;
    if ((real === point || real.startsWith(point.endsWith('/') ? point : `${point}/`)) && (!best || point.length >= best.point.length)) {
      best = { point, source: f[dash + 2] ?? '' };
    }
  }
  return best?.source;
}
