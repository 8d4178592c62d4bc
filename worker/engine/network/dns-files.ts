/**
 * /etc/resolv.conf and /etc/hosts of a bridge container, written into its rootfs (the
 * overlay, so into its own upper dir) before it starts: the nameservers configured for
 * containers (FAASBOX_NET_DNS), never the host's own resolv.conf, whose resolvers are
 * often host-local (127.0.0.53) or internal.
 */
import { closeSync, lstatSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { formatIpv4 } from './cidr.js';

export function resolvConf(dns: number[]): string {
  if (dns.length === 0) return '# faasbox: no nameservers are configured for containers (FAASBOX_NET_DNS)\n';
  return `${dns.map((a) => `nameserver ${formatIpv4(a)}`).join('\n')}\noptions timeout:2 attempts:2\n`;
}

export function hostsFile(address: number, hostname: string): string {
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${formatIpv4(address)}\t${hostname}\n`;
}

/**
 * Writes both files under rootfs/etc. The image's own entries are replaced, and never
 * followed: a symlink there (an image may point /etc/resolv.conf anywhere) is removed,
 * and the new file is made with O_EXCL, which does not follow one either. An /etc that
 * is not a directory is refused.
 */
export function writeDnsFiles(rootfs: string, files: { resolv: string; hosts: string }): void {
  const etc = path.join(rootfs, 'etc');
  try {
    if (!lstatSync(etc).isDirectory()) throw new Error(`${etc} is not a directory; refusing to write resolv.conf through it`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(etc, { mode: 0o755 });
  }
  for (const [name, text] of [['resolv.conf', files.resolv], ['hosts', files.hosts]] as const) {
    const p = path.join(etc, name);
    try {
      unlinkSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const fd = openSync(p, 'wx', 0o644);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  }
}
