/**
 * Bridge mode: one bridge of the worker's own (fbx<hash>, its address the subnet's first
 * host, the containers' default gateway), one veth pair per container (the host end
 * fbx<hash>-<address offset> on the bridge as an isolated port, the other end created as
 * eth0 directly in the container's namespace), an address leased from the IPAM, the
 * egress policy's set elements, optional bandwidth limits, and the container's DNS
 * files. The bridge and the nft table are made once, at open(); a container's share is
 * made by attach() while the container is created, or in two steps: prepare() for a
 * parked seed (its link, veth.ts) and adopt() by the create that takes it; a bridge stem
 * cell is made with no egress and takes its function's at specialise(). Set elements go
 * over nfnetlink (nftsets.ts), names come from the state dir's hash (names.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { formatEgress as formatEgressRule, formatIpv4, parseEgress, type EgressRule } from './cidr.js';
import { hostsFile, resolvConf, writeDnsFiles } from './dns-files.js';
import { NetworkConfigError, NetworkUnavailableError } from './errors.js';
import { hostRoutes, setSysctl, uplinkMtu } from './host.js';
import { Ipam, type Lease } from './ipam.js';
import { EEXIST, Netlink } from './netlink.js';
import { makeVeth } from './veth.js';
import { bridgeMac, networkNames } from './names.js';
import { dropScript, rulesetScript, runNft, type Member, type PolicyTable } from './nft.js';
import { NftSets } from './nftsets.js';
import { parseSettings, type NetworkSettings, type ParsedSettings } from './options.js';
import { shape } from './shaping.js';
import { SyscallError } from '../sys/errors.js';

/** What a bridge container asks for (ContainerConfig.bridge). */
export interface BridgeRequest {
  egress?: EgressRule[];
  egressMbps?: number;
  ingressMbps?: number;
}

/** A container's share of the network, released by detach(). */
export interface Attachment {
  id: string;
  address: number;
  hostVeth: string;
  /** Its elements in the policy's sets now (a stem cell's: none; specialise() replaces them). */
  member: Member;
  /** Whether a tc qdisc shapes it (specialise() of a function with limits adds one). */
  shaped: boolean;
  /** Its lease file's rewrite under way (specialise()), awaited before the lease goes. */
  leaseWrite?: Promise<void>;
  /** Given back (release()): its address may be someone else's now. */
  released?: boolean;
}

/** Bytes through a container's eth0, from its point of view (the host end counts the other way round). */
export interface NetUsage {
  rxBytes: number;
  txBytes: number;
}

export interface NetworkGcReport {
  leases: string[];
  links: string[];
}

export class BridgeNetwork {
  readonly ipam: Ipam;
  readonly names: ReturnType<typeof networkNames>;
  readonly policy: PolicyTable;
  /** The sets' elements, changed over nfnetlink (no `nft` forked per container). */
  readonly sets: NftSets;
  private nl: Netlink | undefined;
  private bridgeIndex = 0;
  private mtu = 1500;
  private live = new Map<string, Attachment>();

  private constructor(
    readonly stateDir: string,
    readonly settings: ParsedSettings,
  ) {
    this.names = networkNames(stateDir);
    this.ipam = new Ipam(stateDir, settings.subnet);
    this.policy = { table: this.names.table, bridge: this.names.bridge, subnet: settings.subnet, deny: settings.deny, dns: settings.dns };
    this.sets = new NftSets(this.names.table);
  }

  /**
   * Checks the settings (throws NetworkConfigError: the worker refuses to start), then
   * makes the bridge and the nft table; a kernel or host that cannot (no veth, bridge or
   * nftables) throws NetworkUnavailableError.
   */
  static async open(stateDir: string, settings: NetworkSettings): Promise<BridgeNetwork> {
    const names = networkNames(stateDir);
    const n = new BridgeNetwork(stateDir, parseSettings(settings, names.bridge));
    await n.setup();
    return n;
  }

  get gateway(): number {
    return this.ipam.gateway;
  }

  private async setup(): Promise<void> {
    const { bridge } = this.names;
    let created = false;
    try {
      this.nl = Netlink.open();
      this.mtu = uplinkMtu(hostRoutes());
      let link = this.nl.link(bridge);
      if (!link) {
        this.nl.createBridge(bridge, this.mtu, bridgeMac(this.stateDir));
        created = true;
        link = this.nl.link(bridge);
        if (!link) throw new Error(`bridge ${bridge} vanished after its creation`);
      }
      this.bridgeIndex = link.index;
      // Nothing IPv6 on the bridge: containers have no IPv6, and link-local addresses
      // would be a way to the host the IPv4 rules do not name (the inet table drops it too).
      setSysctl(`/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, '1');
      // Forwarding on the bridge only: what arrives on it may be routed out.
      setSysctl(`/proc/sys/net/ipv4/conf/${bridge}/forwarding`, '1');
      // 127.0.0.0/8 from a container is a martian unless route_localnet (CVE-2020-8558).
      setSysctl(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '0');
      try {
        this.nl.addAddress(link.index, this.gateway, this.settings.subnet.prefix, bridge);
      } catch (err) {
        if (!(err instanceof SyscallError && err.errno === EEXIST)) throw err;
      }
      this.nl.setUp(link.index, bridge);
    } catch (err) {
      this.unmake(created);
      throw new NetworkUnavailableError(`cannot make bridge ${bridge}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await runNft(rulesetScript(this.policy, this.members(this.ipam.list())));
    } catch (err) {
      // Without its policy the bridge must not exist: nothing may forward through it unfiltered.
      this.unmake(created);
      throw new NetworkUnavailableError(`cannot install nftables table inet ${this.policy.table}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Undoes a setup that failed half way: the bridge if this setup made it, and the socket. */
  private unmake(createdBridge: boolean): void {
    try {
      if (createdBridge) this.nl?.deleteLink(this.names.bridge);
    } catch {
      // gone already, or never made
    }
    this.nl?.close();
    this.nl = undefined;
  }

  private members(leases: Lease[]): Member[] {
    const out: Member[] = [];
    for (const l of leases) {
      // Unknown egress (a lease being written) gets no element: closed, never open. Its
      // holder adds its own elements once it has written it.
      if (l.pending) continue;
      try {
        out.push({ address: l.address, ...(l.egress ? { egress: l.egress.map(parseEgress) } : {}) });
      } catch {
        // a lease written by another version: its container gets no egress until recreated
      }
    }
    return out;
  }

  vethName(address: number): string {
    return `${this.names.vethPrefix}${this.ipam.offset(address).toString(16)}`;
  }

  /**
   * Gives the container whose init is pid (parked, its netns made by clone) its eth0,
   * address, route, policy elements, limits and DNS files. On failure everything taken
   * is released before the error is thrown.
   */
  async attach(o: { id: string; pid: number; rootfs: string; hostname: string; request: BridgeRequest }): Promise<Attachment> {
    const att = this.link({ id: o.id, pid: o.pid, egress: o.request.egress });
    await this.finish(att, o);
    return att;
  }

  /**
   * The part of attach() that needs no container yet, for a seed (seeds.ts) whose
   * namespace exists before its container is known: the lease (held under the seed's
   * name), eth0 with its address and route, and no set element (no egress). A create that
   * takes the seed then only finish()es it: ~1 ms of netlink and files off its path.
   */
  prepare(o: { id: string; pid: number }): Attachment {
    return this.link({ id: o.id, pid: o.pid, egress: [] });
  }

  /** A prepared attachment (a seed's) becomes container id's: its lease, set elements, limits and DNS files. */
  async adopt(att: Attachment, o: { id: string; pid: number; rootfs: string; hostname: string; request: BridgeRequest }): Promise<void> {
    this.live.delete(att.id);
    att.id = o.id;
    // Off the event loop, as specialise()'s; release() waits for it.
    att.leaseWrite = this.ipam.update(att.address, o.id, o.request.egress?.map(formatEgressRule)).catch(() => {});
    att.member = { address: att.address, ...(o.request.egress ? { egress: o.request.egress } : {}) };
    await this.finish(att, o);
  }

  /** The lease, then the veth pair with eth0's address, up and route (veth.ts). Released again on failure. */
  private link(o: { id: string; pid: number; egress: EgressRule[] | undefined }): Attachment {
    const lease = this.ipam.allocate(o.id, o.egress?.map(formatEgressRule));
    const att: Attachment = {
      id: o.id,
      address: lease.address,
      hostVeth: this.vethName(lease.address),
      member: { address: lease.address, ...(o.egress ? { egress: o.egress } : {}) },
      shaped: false,
    };
    try {
      makeVeth(this.nl!, { hostVeth: att.hostVeth, pid: o.pid, mtu: this.mtu, bridgeIndex: this.bridgeIndex, address: att.address, prefix: this.settings.subnet.prefix, gateway: this.gateway, what: o.id });
    } catch (err) {
      void this.release(att, { linked: false, elements: false }).catch(() => {});
      throw err;
    }
    this.live.set(o.id, att);
    return att;
  }

  /** Set elements, bandwidth limits and DNS files: what a container's create adds to its link. Released on failure. */
  private async finish(att: Attachment, o: { id: string; pid: number; rootfs: string; hostname: string; request: BridgeRequest }): Promise<void> {
    try {
      this.sets.add(att.member);
      if (o.request.egressMbps || o.request.ingressMbps) {
        att.shaped = true;
        await shape({ hostVeth: att.hostVeth, pid: o.pid, egressMbps: o.request.egressMbps, ingressMbps: o.request.ingressMbps });
      }
      writeDnsFiles(o.rootfs, { resolv: resolvConf(this.settings.dns), hosts: hostsFile(att.address, o.hostname) });
      this.live.set(o.id, att);
    } catch (err) {
      this.live.delete(att.id);
      await this.release(att, { linked: true, elements: true }).catch(() => {});
      throw err;
    }
  }

  /**
   * Gives a container made ahead (a stem cell: attached with an empty allowlist, so no
   * set element and no egress at all) a function's egress and limits: its elements are
   * replaced in one nf_tables transaction (~0.05 ms) and its lease records them (gc
   * rebuilds the sets from leases) in the background. A gc rebuilding the table before
   * that write lands would give the container the stem's empty allowlist: no egress,
   * never another's. Bandwidth limits fork `tc` (a few ms), paid only by
   * functions that set one; a stem cell is never shaped, so there is nothing to undo.
   */
  specialise(att: Attachment, request: BridgeRequest, pid: number): Promise<void> | undefined {
    const to: Member = { address: att.address, ...(request.egress ? { egress: request.egress } : {}) };
    this.sets.replace(att.member, to);
    att.member = to;
    const previous = att.leaseWrite;
    att.leaseWrite = (previous ?? Promise.resolve()).then(() => this.ipam.update(att.address, att.id, request.egress?.map(formatEgressRule))).catch(() => {
      // The lease still names this container: gc keeps it, with the stem's empty allowlist.
    });
    if (!request.egressMbps && !request.ingressMbps) return undefined;
    att.shaped = true;
    return shape({ hostVeth: att.hostVeth, pid, egressMbps: request.egressMbps, ingressMbps: request.ingressMbps });
  }

  /** The container's eth0 counters, read from its host end's (sysfs: ~10 us a file). */
  usage(att: Attachment): NetUsage {
    const read = (f: string) => Number(readFileSync(`/sys/class/net/${att.hostVeth}/statistics/${f}`, 'ascii'));
    // What the host end receives, the container sent.
    return { rxBytes: read('tx_bytes'), txBytes: read('rx_bytes') };
  }

  /** Releases a container's share: its veth (the peer goes with it), set elements, then its lease. */
  async detach(att: Attachment): Promise<void> {
    this.live.delete(att.id);
    await this.release(att, { linked: true, elements: true });
  }

  private async release(att: Attachment, o: { linked: boolean; elements: boolean }): Promise<void> {
    // Once only: a second release (a failed create's undo after finish() gave it back) must
    // not remove the lease of whoever took the address since.
    if (att.released) return;
    att.released = true;
    await att.leaseWrite;
    try {
      // Deleted explicitly rather than left to the kernel's asynchronous cleanup of the
      // dead namespace: once this returns the name is free, so the lease can go.
      if (o.linked) this.nl?.deleteLink(att.hostVeth);
      if (o.elements) this.sets.remove(att.member);
    } finally {
      this.ipam.release(att.address);
    }
  }

  /**
   * Frees every lease whose container is not in live (a crashed worker's), deletes veths
   * under the worker's prefix that no lease holds, and rewrites the table with the
   * members that remain, so that no set element outlives its container.
   */
  async gc(live: (id: string) => boolean): Promise<NetworkGcReport> {
    const report: NetworkGcReport = { leases: [], links: [] };
    const kept = new Set<string>();
    this.ipam.sweepRewrites();
    for (const l of this.ipam.list()) {
      if (!l.id || live(l.id)) {
        kept.add(this.vethName(l.address));
        continue;
      }
      if (this.nl?.deleteLink(this.vethName(l.address))) report.links.push(this.vethName(l.address));
      this.ipam.release(l.address);
      report.leases.push(formatIpv4(l.address));
    }
    for (const name of listLinks()) {
      if (!name.startsWith(this.names.vethPrefix) || kept.has(name)) continue;
      // A veth whose namespace the kernel is still tearing down may vanish under us: fine.
      if (this.nl?.deleteLink(name)) report.links.push(name);
    }
    if (report.leases.length || report.links.length) await runNft(rulesetScript(this.policy, this.members(this.ipam.list())));
    return report;
  }

  /** Removes the bridge and the table once no lease is left (the worker's last container gone); else keeps both. */
  async close(): Promise<boolean> {
    const nl = this.nl;
    if (!nl) return false;
    if (this.ipam.list().length > 0) return false;
    nl.deleteLink(this.names.bridge);
    nl.close();
    this.sets.close();
    this.nl = undefined;
    await runNft(dropScript(this.policy.table));
    return true;
  }
}

function listLinks(): string[] {
  try {
    return readdirSync('/sys/class/net');
  } catch {
    return [];
  }
}

export { NetworkConfigError, NetworkUnavailableError };
export { bridgeMac, networkNames } from './names.js';
