/**
 * The worker's network settings, parsed from their strings (FAASBOX_NET_SUBNET,
 * FAASBOX_NET_DENY, FAASBOX_NET_DNS: read by the entry points, cli/ and worker/main.ts).
 * A value that does not parse, or a subnet that overlaps one of the host's routes, is a
 * NetworkConfigError naming the setting and the entry: the worker refuses to start.
 */
import { CidrError, formatCidr, overlaps, parseCidr, parseIpv4, type Cidr } from './cidr.js';
import { NetworkConfigError } from './errors.js';
import { hostRoutes, type HostRoute } from './host.js';

export interface NetworkSettings {
  /** The containers' IPv4 subnet, e.g. "10.88.0.0/16". */
  subnet: string;
  /** CIDRs no container may reach (169.254.0.0/16 is always denied). */
  deny?: string[];
  /** Nameservers written into containers' /etc/resolv.conf. */
  dns?: string[];
}

export interface ParsedSettings {
  subnet: Cidr;
  deny: Cidr[];
  dns: number[];
}

/** The settings from environment-style strings; undefined when no subnet is configured (no bridge mode). */
export function settingsFromEnv(env: Record<string, string | undefined>): NetworkSettings | undefined {
  const subnet = env.FAASBOX_NET_SUBNET?.trim();
  if (!subnet) return undefined;
  const list = (v: string | undefined): string[] => (v ?? '').split(/[\s,]+/).filter(Boolean);
  return { subnet, deny: list(env.FAASBOX_NET_DENY), dns: list(env.FAASBOX_NET_DNS) };
}

/** Parses and checks the settings; ownIface is the worker's bridge, whose route is its own. */
export function parseSettings(s: NetworkSettings, ownIface: string, routes: HostRoute[] = hostRoutes()): ParsedSettings {
  let subnet: Cidr;
  try {
    subnet = parseCidr(s.subnet);
  } catch (err) {
    throw new NetworkConfigError('FAASBOX_NET_SUBNET', (err as Error).message);
  }
  if (subnet.prefix > 30 || subnet.prefix < 8) throw new NetworkConfigError('FAASBOX_NET_SUBNET', `${formatCidr(subnet)} must be between a /8 and a /30`);
  for (const r of routes) {
    if (r.iface === ownIface || r.prefix === 0) continue; // the default route overlaps everything by definition
    if (overlaps(subnet, r)) {
      throw new NetworkConfigError('FAASBOX_NET_SUBNET', `${formatCidr(subnet)} overlaps the host's route ${formatCidr(r)} dev ${r.iface}; choose a subnet no host route covers`);
    }
  }
  const deny = (s.deny ?? []).map((d) => {
    try {
      return parseCidr(d);
    } catch (err) {
      throw new NetworkConfigError('FAASBOX_NET_DENY', `entry ${(err as CidrError).message}`);
    }
  });
  const dns = (s.dns ?? []).map((d) => {
    const a = parseIpv4(d);
    if (a === undefined) throw new NetworkConfigError('FAASBOX_NET_DNS', `entry ${JSON.stringify(d)} is not an IPv4 address`);
    return a;
  });
  return { subnet, deny, dns };
}
