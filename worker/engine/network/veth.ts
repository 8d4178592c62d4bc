/**
 * A container's link: the veth pair whose peer is created as eth0 directly in the
 * container's network namespace (amazon-vpc-cni-k8s#3764: never moved there afterwards),
 * the host end an isolated port of the bridge, and inside eth0's address, up and default
 * route, all over rtnetlink (netlink.ts). ~0.7 ms here, most of it the kernel's veth
 * creation; network.ts does it at create, or ahead for seeds.
 */
import { closeSync } from 'node:fs';
import { setSysctl } from './host.js';
import { Netlink } from './netlink.js';
import { inNetns, netnsOf, openNetns } from './netns.js';

export interface VethPlan {
  /** The host end's name. */
  hostVeth: string;
  /** The container's init (its network namespace). */
  pid: number;
  mtu: number;
  /** The bridge's ifindex, the host end's master. */
  bridgeIndex: number;
  address: number;
  prefix: number;
  gateway: number;
  /** For messages: whose link it is. */
  what: string;
}

/** Makes the link; on failure deletes the veth it made (its peer goes with it) before throwing. */
export function makeVeth(nl: Netlink, p: VethPlan): void {
  const nsFd = openNetns(netnsOf(p.pid));
  try {
    nl.createVeth({ hostName: p.hostVeth, peerName: 'eth0', nsFd, mtu: p.mtu, master: p.bridgeIndex });
  } finally {
    closeSync(nsFd);
  }
  try {
    // An isolated bridge port forwards only to non-isolated ports (the bridge itself):
    // containers never see each other's frames, ARP included.
    setSysctl(`/sys/class/net/${p.hostVeth}/brport/isolated`, '1');
    const inside = inNetns(netnsOf(p.pid), () => {
      setSysctl('/proc/sys/net/ipv6/conf/eth0/disable_ipv6', '1');
      return Netlink.open();
    });
    try {
      const eth0 = inside.link('eth0');
      if (!eth0) throw new Error("eth0 did not appear in the container's namespace");
      inside.addAddress(eth0.index, p.address, p.prefix, `eth0 of ${p.what}`);
      inside.setUp(eth0.index, `eth0 of ${p.what}`);
      inside.addDefaultRoute(p.gateway, eth0.index, `default route of ${p.what}`);
    } finally {
      inside.close();
    }
  } catch (err) {
    try {
      nl.deleteLink(p.hostVeth);
    } catch {
      // gone with its namespace already; gc sweeps what is left
    }
    throw err;
  }
}
