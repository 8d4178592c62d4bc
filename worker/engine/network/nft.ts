/**
 * The egress policy as one nftables table of the worker's own (inet family, so IPv6 is
 * covered by the same chains), written once when the worker starts (and by gc, with the
 * members that hold leases). Containers change only set elements: a create adds its
 * address to `open` (unrestricted egress) or its allowlist to `allownet`/`allowport`, a
 * stem cell adds nothing until it is specialised, a delete removes them. Elements go
 * over nfnetlink (nftsets.ts), one transaction per change and no process forked: an
 * `nft -f` costs 5-35 ms a fork here.
 *
 * What the rules block, and where (SECURITY.md has the reasoning):
 * - input hook: everything arriving from the bridge (the host's addresses, the bridge's
 *   own, 127.0.0.0/8 through route_localnet, IPv6 link-local), and anything claiming a
 *   container address on another interface (kubernetes CVE-2020-8558);
 * - forward hook: bridge to bridge (container to container through the host; port
 *   isolation covers the bridge itself), new connections towards containers, the deny
 *   set (169.254.0.0/16 and FAASBOX_NET_DENY) before anything is accepted, source
 *   addresses outside the subnet, and whatever the container's sets do not allow;
 * - postrouting: what leaves is masqueraded behind the host's address.
 */
import { spawn } from 'node:child_process';
import { formatCidr, formatEgress, formatIpv4, type Cidr, type EgressRule } from './cidr.js';

export interface PolicyTable {
  /** nft table name (family inet). */
  table: string;
  bridge: string;
  subnet: Cidr;
  deny: Cidr[];
  /** Nameservers every container may reach on port 53. */
  dns: number[];
}

/** One container's place in the sets. */
export interface Member {
  address: number;
  /** Absent: any destination not denied. */
  egress?: EgressRule[];
}

const q = (s: string): string => JSON.stringify(s);

/** The elements of one member, as nft `element` lines (without the verb). */
export function memberElements(t: PolicyTable, m: Member): string[] {
  const ip = formatIpv4(m.address);
  if (!m.egress) return [`inet ${t.table} open { ${ip} }`];
  return m.egress.map((r) =>
    r.port ? `inet ${t.table} allowport { ${ip} . ${formatCidr(r.cidr)} . ${r.port} }` : `inet ${t.table} allownet { ${ip} . ${formatCidr(r.cidr)} }`,
  );
}

/**
 * The whole table, replacing any earlier one atomically (an empty `table` first, so
 * that `delete` finds one), with the members that hold leases now.
 */
export function rulesetScript(t: PolicyTable, members: Member[]): string {
  const br = q(t.bridge);
  const subnet = formatCidr(t.subnet);
  const deny = ['169.254.0.0/16', ...t.deny.map(formatCidr)];
  const lines = [
    `table inet ${t.table} {}`,
    `delete table inet ${t.table}`,
    `table inet ${t.table} {`,
    `  comment "faasbox egress policy of bridge ${t.bridge}"`,
    `  set deny { type ipv4_addr; flags interval; auto-merge; elements = { ${deny.join(', ')} } }`,
    `  set dns { type ipv4_addr;${t.dns.length ? ` elements = { ${t.dns.map(formatIpv4).join(', ')} }` : ''} }`,
    `  set open { type ipv4_addr; }`,
    `  set allownet { type ipv4_addr . ipv4_addr; flags interval; }`,
    `  set allowport { type ipv4_addr . ipv4_addr . inet_service; flags interval; }`,
    `  chain input {`,
    `    type filter hook input priority -10; policy accept;`,
    `    iifname ${br} counter drop comment "containers never reach the host itself"`,
    `    iifname != "lo" ip saddr ${subnet} counter drop comment "a container address from elsewhere is spoofed"`,
    `  }`,
    `  chain forward {`,
    `    type filter hook forward priority -10; policy accept;`,
    `    iifname ${br} oifname ${br} counter drop comment "no container reaches another"`,
    `    oifname ${br} ct state established,related accept`,
    `    oifname ${br} counter drop comment "no inbound connections to containers"`,
    `    iifname ${br} jump egress`,
    `  }`,
    `  chain egress {`,
    `    ip saddr != ${subnet} counter drop`,
    `    ip daddr @deny counter drop`,
    `    ct state established,related accept`,
    `    meta l4proto { tcp, udp } ip daddr @dns th dport 53 accept`,
    `    ip saddr @open accept`,
    `    ip saddr . ip daddr @allownet accept`,
    `    meta l4proto { tcp, udp } ip saddr . ip daddr . th dport @allowport accept`,
    `    counter drop`,
    `  }`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ip saddr ${subnet} oifname != ${br} masquerade`,
    `  }`,
    `}`,
  ];
  for (const m of members) for (const e of memberElements(t, m)) lines.push(`add element ${e}`);
  return `${lines.join('\n')}\n`;
}

/** Removes the table (nothing when it is already gone). */
export const dropScript = (table: string): string => `table inet ${table} {}\ndelete table inet ${table}\n`;

export class NftError extends Error {
  readonly code = 'NFT_FAILED';
  constructor(readonly stderr: string, readonly script: string) {
    super(`nft -f failed: ${stderr.trim() || 'no output'}`);
    this.name = 'NftError';
  }
}

/** Runs one nft script as one transaction. */
export function runNft(script: string, bin = 'nft'): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', (e) => reject(new NftError(`${bin}: ${e.message} (is Debian's nftables installed?)`, script)));
    p.on('close', (code) => (code === 0 ? resolve() : reject(new NftError(err, script))));
    p.stdin.end(script);
  });
}

export { formatEgress };
