/** What bridge mode reads from the host: its IPv4 routes, its uplink's MTU, and sysctls it sets on its own bridge. */
import { readFileSync, writeFileSync } from 'node:fs';

export interface HostRoute {
  iface: string;
  base: number;
  prefix: number;
}

/** The main table's IPv4 routes (/proc/net/route; addresses there are little-endian hex). */
export function hostRoutes(text = readText('/proc/net/route')): HostRoute[] {
  const out: HostRoute[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const le = (h: string): number => Buffer.from(h.padStart(8, '0'), 'hex').readUInt32LE(0);
    const base = le(f[1]!);
    const mask = le(f[7]!);
    out.push({ iface: f[0]!, base, prefix: 32 - popcountZeros(mask) });
  }
  return out;
}

function popcountZeros(mask: number): number {
  let n = 0;
  for (let i = 0; i < 32; i++) if (((mask >>> i) & 1) === 0) n++;
  return n;
}

/** MTU of the interface holding the default route; 1500 when there is none. */
export function uplinkMtu(routes = hostRoutes()): number {
  const def = routes.find((r) => r.prefix === 0);
  if (!def) return 1500;
  const v = Number(readText(`/sys/class/net/${def.iface}/mtu`).trim());
  return Number.isInteger(v) && v >= 576 ? v : 1500;
}

export function readText(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/** Writes a sysctl; false when the file does not exist (e.g. a kernel without IPv6). */
export function setSysctl(p: string, value: string): boolean {
  try {
    writeFileSync(p, value);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
