/**
 * Block I/O limits and usage, in the spelling of each flavour: v2's io.max / io.stat
 * (one line per device), v1's blkio.throttle.* files (one "MAJ:MIN value" per write).
 * A limit of 0 or absent is none ("max" in v2, a 0 written in v1 removes the rule).
 */
import { CgroupError } from './errors.js';

export function blkioUnsupported(path: string, why: string): CgroupError {
  return new CgroupError('CGROUP_UNSUPPORTED', path, `block I/O limits are not available: ${why}`, {
    hint: 'cgroup v2: enable "+io" in cgroup.subtree_control down to faasbox\'s root; cgroup v1: mount the blkio controller (CONFIG_BLK_DEV_THROTTLING)',
  });
}

/** Limits on one block device, given as "MAJ:MIN" of the whole disk (the kernel refuses partitions). */
export interface IoLimit {
  device: string;
  readBps?: number;
  writeBps?: number;
  readIops?: number;
  writeIops?: number;
}

export interface IoUsage {
  ioReadBytes: number;
  ioWriteBytes: number;
}

const DEVICE = /^\d+:\d+$/;

function checked(io: IoLimit, path: string): IoLimit {
  if (!DEVICE.test(io.device)) throw new CgroupError('CGROUP_INVALID_LIMIT', path, `invalid block device "${io.device}" (want MAJ:MIN)`);
  for (const k of ['readBps', 'writeBps', 'readIops', 'writeIops'] as const) {
    const v = io[k];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new CgroupError('CGROUP_INVALID_LIMIT', path, `invalid ${k} ${v}`);
  }
  return io;
}

/** The line for v2's io.max: every key written, so that a limit dropped at specialisation goes back to max. */
export function ioMaxLine(io: IoLimit, path: string): string {
  const { device, readBps, writeBps, readIops, writeIops } = checked(io, path);
  const v = (n: number | undefined) => (n ? String(n) : 'max');
  return `${device} rbps=${v(readBps)} wbps=${v(writeBps)} riops=${v(readIops)} wiops=${v(writeIops)}`;
}

/** v1's four files and what to write to each. */
export function blkioThrottleWrites(io: IoLimit, dir: string): [string, string][] {
  const { device, readBps, writeBps, readIops, writeIops } = checked(io, dir);
  return [
    [`${dir}/blkio.throttle.read_bps_device`, `${device} ${readBps ?? 0}`],
    [`${dir}/blkio.throttle.write_bps_device`, `${device} ${writeBps ?? 0}`],
    [`${dir}/blkio.throttle.read_iops_device`, `${device} ${readIops ?? 0}`],
    [`${dir}/blkio.throttle.write_iops_device`, `${device} ${writeIops ?? 0}`],
  ];
}

/** v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device, summed. */
export function parseIoStat(text: string): IoUsage {
  let ioReadBytes = 0;
  let ioWriteBytes = 0;
  for (const line of text.split('\n')) {
    ioReadBytes += Number(/\brbytes=(\d+)/.exec(line)?.[1] ?? 0);
    ioWriteBytes += Number(/\bwbytes=(\d+)/.exec(line)?.[1] ?? 0);
  }
  return { ioReadBytes, ioWriteBytes };
}

/** v1 blkio.throttle.io_service_bytes: "MAJ:MIN Read N" / "MAJ:MIN Write N" per device, then "Total N". */
export function parseBlkioServiceBytes(text: string): IoUsage {
  let ioReadBytes = 0;
  let ioWriteBytes = 0;
  for (const line of text.split('\n')) {
    const [dev, op, n] = line.trim().split(/\s+/);
    if (!dev || !DEVICE.test(dev) || n === undefined) continue;
    if (op === 'Read') ioReadBytes += Number(n);
    else if (op === 'Write') ioWriteBytes += Number(n);
  }
  return { ioReadBytes, ioWriteBytes };
}

export function sameIo(a: IoLimit | undefined, b: IoLimit | undefined): boolean {
  if (!a || !b) return a === b;
  return a.device === b.device && (a.readBps ?? 0) === (b.readBps ?? 0) && (a.writeBps ?? 0) === (b.writeBps ?? 0) && (a.readIops ?? 0) === (b.readIops ?? 0) && (a.writeIops ?? 0) === (b.writeIops ?? 0);
}
