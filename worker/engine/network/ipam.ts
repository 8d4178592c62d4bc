/**
 * faasbox's own IPAM, after CNI's host-local plugin: one lease file per address under
 * the state dir (network/leases/<address>), created with O_EXCL so that two allocations,
 * in this worker or in a CLI on the same state dir, can never take the same address.
 * The file names the container holding it; gc (network.ts) frees the leases whose
 * container is gone, so a restarted worker neither reuses a live address nor leaks one.
 *
 * Addresses are handed out round robin from the last one taken (host-local's
 * last_reserved_ip), so that a freed address is not reused at once while a peer may
 * still hold an ARP or conntrack entry for it.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeSync, openSync, closeSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { formatCidr, formatIpv4, maskOf, parseIpv4, type Cidr } from './cidr.js';
import { AddressesExhaustedError } from './errors.js';

export interface Lease {
  address: number;
  /** The container holding it. */
  id: string;
  /** Its egress allowlist ("CIDR[:port]"), absent: unrestricted (the policy's sets are rebuilt from leases). */
  egress?: string[];
  /** The file could not be read yet (its holder is still in allocate()): nothing is known of its egress. */
  pending?: boolean;
}

export class Ipam {
  readonly dir: string;
  /** The bridge's own address: the subnet's first host. */
  readonly gateway: number;
  private readonly first: number;
  private readonly last: number;
  private cursor: number;

  constructor(stateDir: string, readonly subnet: Cidr) {
    this.dir = path.join(stateDir, 'network', 'leases');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const size = 2 ** (32 - subnet.prefix);
    if (size < 4) throw new RangeError(`subnet ${formatCidr(subnet)} is too small (needs a /30 or larger)`);
    this.gateway = subnet.base + 1;
    this.first = subnet.base + 2;
    this.last = subnet.base + size - 2; // the broadcast address stays free
    this.cursor = this.first;
  }

  /** Addresses the subnet can give containers. */
  get capacity(): number {
    return this.last - this.first + 1;
  }

  /** Takes a free address for container id, recording its lease. */
  allocate(id: string, egress?: string[]): Lease {
    const n = this.capacity;
    for (let i = 0; i < n; i++) {
      const a = this.first + ((this.cursor - this.first + i) % n);
      let fd: number;
      try {
        fd = openSync(this.file(a), 'wx', 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      const lease: Lease = { address: a, id, ...(egress ? { egress } : {}) };
      try {
        writeSync(fd, JSON.stringify({ id, ...(egress ? { egress } : {}) }));
      } finally {
        closeSync(fd);
      }
      this.cursor = a + 1 > this.last ? this.first : a + 1;
      return lease;
    }
    throw new AddressesExhaustedError(formatCidr(this.subnet));
  }

  /**
   * Rewrites a held lease's allowlist (a stem cell specialised for a function), off the
   * event loop: rewriting a file in place costs ~0.17 ms on ext4 here (auto_da_alloc
   * flushes a truncated file's blocks), which would sit on the specialised start's path.
   * Its holder awaits it before release(), so a late write never brings a lease back.
   */
  async update(address: number, id: string, egress?: string[]): Promise<void> {
    // Written aside and renamed over: a reader (gc rebuilding the sets) never sees it half written.
    const tmp = `${this.file(address)}.new`;
    await writeFile(tmp, JSON.stringify({ id, ...(egress ? { egress } : {}) }), { mode: 0o600 });
    await rename(tmp, this.file(address));
  }

  /** Removes rewrites a crash left half done (update()'s `.new` files older than ageMs); returns their names. */
  sweepRewrites(ageMs = 60_000, now = Date.now()): string[] {
    const out: string[] = [];
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const name of names) {
      if (!name.endsWith('.new')) continue;
      const p = path.join(this.dir, name);
      try {
        if (now - statSync(p).mtimeMs < ageMs) continue;
        rmSync(p, { force: true });
        out.push(name);
      } catch {
        // renamed meanwhile: not left over
      }
    }
    return out;
  }

  release(address: number): void {
    rmSync(this.file(address), { force: true });
  }

  /** Every recorded lease (a file being written reads as a lease of unknown holder ""). */
  list(): Lease[] {
    const out: Lease[] = [];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const name of names) {
      const a = parseIpv4(name);
      if (a === undefined || (a & maskOf(this.subnet.prefix)) >>> 0 !== this.subnet.base) continue;
      let rec: { id?: string; egress?: string[] } | undefined;
      try {
        rec = JSON.parse(readFileSync(path.join(this.dir, name), 'utf8')) as NonNullable<typeof rec>;
      } catch {
        // created, not yet written: its holder is still in allocate()
      }
      out.push({ address: a, id: rec?.id ?? '', ...(rec?.egress ? { egress: rec.egress } : {}), ...(rec ? {} : { pending: true }) });
    }
    return out;
  }

  /** The address's offset in the subnet: what names its veth (unique while the lease is held). */
  offset(address: number): number {
    return address - this.subnet.base;
  }

  private file(a: number): string {
    return path.join(this.dir, formatIpv4(a));
  }
}
