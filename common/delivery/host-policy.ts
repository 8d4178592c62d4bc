/**
 * Which hosts a callback (a `{"url"}` destination, an X-Callback-Url) may be sent to: a
 * callback is a request the platform makes on a user's behalf, so without a policy it
 * could be aimed at the platform's own internal services (Redis, the cloud's metadata
 * endpoint at 169.254.169.254, a worker's /metrics) - server-side request forgery.
 *
 * Rules, in order:
 *   1. a host on the allow list (an address in an allowed CIDR, or an allowed hostname)
 *      is permitted;
 *   2. a host on the deny list (the defaults below, the configured entries, the platform's
 *      own interface addresses) is refused; `*` on the deny list refuses everything not
 *      allowed (an allow-list-only deployment);
 *   3. anything else is permitted.
 *
 * The check runs twice: when a destination is accepted (deploy, trigger PUT, invoke with
 * X-Callback-Url; only what the URL itself says can be checked then, a literal address or
 * a listed hostname), and at send time against every address the hostname resolves to,
 * the connection then going to the checked address itself (callback.ts), so that a name
 * whose DNS answer changes in between (DNS rebinding) cannot get through.
 *
 * IPv4 addresses inside IPv6 (::ffff:a.b.c.d mapped, 64:ff9b::/96 NAT64) are checked as
 * the IPv4 address they carry: `[::ffff:127.0.0.1]` is loopback.
 */
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** Refused unless allowed: loopback, private, link-local (cloud metadata), unspecified, multicast, reserved; and IPv6's equivalents. */
export const DEFAULT_CALLBACK_DENY: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  'fe80::/10',
  'fc00::/7',
  'ff00::/8',
];

export interface HostPolicySettings {
  /** CIDRs, addresses or hostnames (`*.example.com` for a domain's subdomains) always permitted. */
  allow?: readonly string[];
  /** Refused besides DEFAULT_CALLBACK_DENY; `*` refuses everything not allowed. */
  deny?: readonly string[];
  /** Include the addresses of this machine's interfaces in the deny list (default true). */
  denyOwnAddresses?: boolean;
}

/** A setting's value that is not a CIDR, an address or a hostname. */
export class HostPolicyConfigError extends Error {
  constructor(entry: string, setting: string) {
    super(`${setting}: ${JSON.stringify(entry)} is not a CIDR (10.0.0.0/8), an address or a hostname (api.example.com, *.example.com)`);
    this.name = 'HostPolicyConfigError';
  }
}

export type HostVerdict = { ok: true } | { ok: false; reason: string };

const HOSTNAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/;

/** "a, b c" -> ["a", "b", "c"]: the form of FAASBOX_CALLBACK_ALLOW and FAASBOX_CALLBACK_DENY. */
export function splitList(text: string | undefined): string[] {
  return (text ?? '').split(/[\s,]+/).filter((s) => s.length > 0);
}

/** The 8 groups of an IPv6 address (a dotted IPv4 tail included). */
function groupsOf(addr: string): number[] {
  let a = addr.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const o = dotted[1]!.split('.').map(Number);
    a = a.slice(0, -dotted[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

/** The IPv4 address an IPv6 one carries (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96), if any. */
export function embeddedV4(addr: string): string | undefined {
  if (isIP(addr) !== 6) return undefined;
  const g = groupsOf(addr);
  const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
  const nat64 = g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);
  if (!mapped && !nat64) return undefined;
  return [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join('.');
}

/** A URL's hostname without IPv6 brackets or a trailing dot, lowercased. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
}

class AddressSet {
  private readonly list = new BlockList();
  private readonly names: string[] = [];
  private readonly suffixes: string[] = [];
  all = false;

  add(entry: string, setting: string): void {
    const e = entry.trim().toLowerCase();
    if (e === '*') {
      this.all = true;
      return;
    }
    const slash = e.indexOf('/');
    const addr = slash < 0 ? e.replace(/^\[|\]$/g, '') : e.slice(0, slash);
    const family = isIP(addr);
    if (family) {
      const bits = slash < 0 ? (family === 4 ? 32 : 128) : Number(e.slice(slash + 1));
      if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) throw new HostPolicyConfigError(entry, setting);
      this.list.addSubnet(addr, bits, family === 4 ? 'ipv4' : 'ipv6');
      return;
    }
    if (slash >= 0 || !HOSTNAME.test(e)) throw new HostPolicyConfigError(entry, setting);
    if (e.startsWith('*.')) this.suffixes.push(e.slice(1).replace(/\.$/, ''));
    else this.names.push(e.replace(/\.$/, ''));
  }

  hasAddress(addr: string): boolean {
    if (this.all) return true;
    const v4 = embeddedV4(addr);
    if (v4 !== undefined) return this.list.check(v4, 'ipv4');
    const family = isIP(addr);
    return family !== 0 && this.list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
  }

  hasName(host: string): boolean {
    return this.names.includes(host) || this.suffixes.some((s) => host.endsWith(s));
  }
}

export class HostPolicy {
  private readonly allow = new AddressSet();
  private readonly deny = new AddressSet();

  constructor(settings: HostPolicySettings = {}) {
    for (const e of settings.allow ?? []) this.allow.add(e, 'callback allow list (FAASBOX_CALLBACK_ALLOW)');
    for (const e of DEFAULT_CALLBACK_DENY) this.deny.add(e, 'default deny list');
    for (const e of settings.deny ?? []) this.deny.add(e, 'callback deny list (FAASBOX_CALLBACK_DENY)');
    if (settings.denyOwnAddresses ?? true) {
      for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) this.deny.add(i.address.replace(/%.*$/, ''), 'own addresses');
    }
  }

  /** Whether a resolved address may be connected to. */
  checkAddress(addr: string): HostVerdict {
    if (this.allow.hasAddress(addr)) return { ok: true };
    if (this.deny.hasAddress(addr)) return { ok: false, reason: `${addr} is in a denied range (loopback, private, link-local, the platform's own, or the configured deny list)` };
    return { ok: true };
  }

  /**
   * What can be told from the URL alone: its scheme, a literal address, a listed hostname.
   * A hostname that is on neither list passes here and is checked after resolution.
   */
  checkUrl(raw: string): HostVerdict & { url?: URL } {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return { ok: false, reason: 'not a URL' };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: `a callback URL is http(s), not ${url.protocol.replace(/:$/, '')}` };
    if (url.username || url.password) return { ok: false, reason: 'a callback URL carries no credentials (user:password@)' };
    const host = hostOf(url);
    if (isIP(host)) {
      const v = this.checkAddress(host);
      return v.ok ? { ok: true, url } : v;
    }
    if (this.allow.hasName(host)) return { ok: true, url };
    if (this.deny.hasName(host) || this.deny.all) return { ok: false, reason: `the host ${host} is on the callback deny list` };
    if (host === 'localhost' || host.endsWith('.localhost')) return { ok: false, reason: `${host} is loopback` };
    return { ok: true, url };
  }

  /** A hostname the allow list names is trusted whatever it resolves to (the operator vouches for its DNS). */
  nameAllowed(host: string): boolean {
    return this.allow.hasName(host);
  }
}
