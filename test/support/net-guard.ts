/**
 * The network tests' guard: an nft table of the test's own that drops, and counts, every
 * packet from the container subnets leaving through one of the machine's real
 * interfaces (those that existed before the test made any: the uplink above all).
 * Hooked on forward and postrouting before NAT (priority -300, so the source is still
 * the container's) and on output. check() fails the test if anything was counted.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

export interface NetGuard {
  table: string;
  uplinks: string[];
  /** Packets dropped so far. */
  dropped(): number;
  /** Throws if any packet was dropped (a test let traffic head for the real network). */
  check(): void;
  remove(): void;
}

const nft = (script: string): string => execFileSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });

export function installNetGuard(subnets: string[]): NetGuard {
  const table = `fbxguard-${randomBytes(4).toString('hex')}`;
  // Real interfaces: everything present now except loopback and faasbox's own.
  const uplinks = readdirSync('/sys/class/net').filter((n) => n !== 'lo' && !n.startsWith('fbx'));
  if (uplinks.length === 0) throw new Error('net guard: no interface to guard');
  const set = `{ ${uplinks.map((u) => JSON.stringify(u)).join(', ')} }`;
  const src = `{ ${subnets.join(', ')} }`;
  const rule = `ip saddr ${src} oifname ${set} counter drop`;
  nft(
    [
      `table inet ${table} {`,
      ...['forward', 'postrouting', 'output'].map((hook) => `  chain guard_${hook} {\n    type filter hook ${hook} priority -300; policy accept;\n    ${rule}\n  }`),
      `}`,
    ].join('\n'),
  );
  const dropped = (): number => {
    const text = execFileSync('nft', ['list', 'table', 'inet', table], { encoding: 'utf8' });
    return [...text.matchAll(/packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  };
  return {
    table,
    uplinks,
    dropped,
    check() {
      const n = dropped();
      if (n !== 0) throw new Error(`net guard: ${n} packet(s) from ${subnets.join(', ')} headed for ${uplinks.join(', ')} and were dropped`);
    },
    remove() {
      nft(`table inet ${table} {}\ndelete table inet ${table}\n`);
    },
  };
}

/**
 * The end of a network suite: the guard's count checked (the suite fails if anything left
 * through an uplink), the guard removed whatever the check said, then nothing of
 * faasbox's may be left: no bridge or veth link, no nft table.
 */
export function endNetSuite(guard: NetGuard | undefined): void {
  try {
    guard?.check();
  } finally {
    guard?.remove();
  }
  const links = readdirSync('/sys/class/net').filter((n) => n.startsWith('fbx'));
  if (links.length) throw new Error(`faasbox links left: ${links.join(', ')}`);
  const tables = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  if (/fbx/.test(tables)) throw new Error(`a faasbox nft table left: ${tables.trim()}`);
}
