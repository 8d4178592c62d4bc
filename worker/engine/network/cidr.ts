/** IPv4 addresses as unsigned 32-bit numbers, CIDRs, and the `CIDR[:port]` egress entries. */

export interface Cidr {
  /** The network address (host bits cleared). */
  base: number;
  prefix: number;
}

export interface EgressRule {
  cidr: Cidr;
  /** Absent: every port (and protocols without ports). */
  port?: number;
}

export class CidrError extends Error {
  constructor(readonly input: string, problem: string) {
    super(`${JSON.stringify(input)} ${problem}`);
    this.name = 'CidrError';
  }
}

export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255) || m.slice(1).some((x) => x.length > 1 && x.startsWith('0'))) return undefined;
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

export const formatIpv4 = (a: number): string => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');

export const maskOf = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** "a.b.c.d/n" (or a bare address, as /32). Host bits set are refused: "10.0.0.1/8" is likely a typo. */
export function parseCidr(s: string): Cidr {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length) throw new CidrError(s, 'is not an IPv4 CIDR (a.b.c.d/n)');
  const a = parseIpv4(addr ?? '');
  if (a === undefined) throw new CidrError(s, 'is not an IPv4 CIDR (a.b.c.d/n)');
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= 32)) throw new CidrError(s, 'has a prefix length outside 0-32');
  if ((a & ~maskOf(prefix)) >>> 0 !== 0) throw new CidrError(s, `has host bits set (the network is ${formatIpv4((a & maskOf(prefix)) >>> 0)}/${prefix})`);
  return { base: a, prefix };
}

export const formatCidr = (c: Cidr): string => `${formatIpv4(c.base)}/${c.prefix}`;

/** "CIDR" or "CIDR:port" (port 1-65535). */
export function parseEgress(s: string): EgressRule {
  if (typeof s !== 'string') throw new CidrError(String(s), 'is not a string');
  const colon = s.indexOf(':');
  const cidr = parseCidr(colon < 0 ? s : s.slice(0, colon));
  if (colon < 0) return { cidr };
  const p = s.slice(colon + 1);
  const port = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new CidrError(s, 'has a port outside 1-65535');
  return { cidr, port };
}

export const formatEgress = (r: EgressRule): string => `${formatCidr(r.cidr)}${r.port ? `:${r.port}` : ''}`;

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & maskOf(p)) >>> 0 === (b.base & maskOf(p)) >>> 0;
}

export const contains = (c: Cidr, a: number): boolean => (a & maskOf(c.prefix)) >>> 0 === c.base;
