/**
 * rtnetlink messages as bytes (<linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>):
 * pure encoding and decoding, so that what reaches the kernel is unit-tested without root.
 * netlink.ts sends them. Host byte order is little-endian on every platform faasbox runs
 * on (x86_64, aarch64); addresses inside attributes are network order.
 */

export const NETLINK_ROUTE = 0;
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_NEWROUTE = 24;

export const IFF_UP = 0x1;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_LINKINFO = 18;
export const IFLA_AF_SPEC = 26;
export const IFLA_NET_NS_FD = 28;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const VETH_INFO_PEER = 1;
export const IFLA_INET6_ADDR_GEN_MODE = 8;
/** IN6_ADDR_GEN_MODE_NONE: no IPv6 link-local address, so nothing IPv6 reaches the host through the bridge. */
export const IN6_ADDR_GEN_MODE_NONE = 1;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RT_TABLE_MAIN = 254;
export const RTPROT_STATIC = 4;
export const RT_SCOPE_UNIVERSE = 0;
export const RTN_UNICAST = 1;

const NLMSG_HDRLEN = 16;
const align4 = (n: number): number => (n + 3) & ~3;

/** One rtattr: its type and payload, or nested attributes. */
export type Attr = { type: number; data: Buffer } | { type: number; nested: Attr[] };

export const attr = {
  str: (type: number, s: string): Attr => ({ type, data: Buffer.from(`${s}\0`) }),
  u8: (type: number, v: number): Attr => ({ type, data: Buffer.from([v]) }),
  u32: (type: number, v: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return { type, data: b };
  },
  ipv4: (type: number, a: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(a >>> 0);
    return { type, data: b };
  },
  raw: (type: number, data: Buffer): Attr => ({ type, data }),
  nest: (type: number, ...nested: Attr[]): Attr => ({ type, nested }),
};

export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const body = 'nested' in a ? encodeAttrs(a.nested) : a.data;
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + body.length, 0);
    head.writeUInt16LE(a.type, 2);
    parts.push(head, body, Buffer.alloc(align4(body.length) - body.length));
  }
  return Buffer.concat(parts);
}

/** struct ifinfomsg (16 bytes). change 0 with flags set means "exactly these flags" (rtnl_dev_combine_flags). */
export function ifinfomsg(o: { family?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

/** struct ifaddrmsg (8 bytes). */
export function ifaddrmsg(o: { prefixLen: number; index: number }): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(o.prefixLen, 1);
  b.writeUInt32LE(o.index, 4);
  return b;
}

/** struct rtmsg (12 bytes) for a unicast IPv4 route in the main table. */
export function rtmsg(o: { dstLen: number }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(o.dstLen, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(RTPROT_STATIC, 5);
  b.writeUInt8(RT_SCOPE_UNIVERSE, 6);
  b.writeUInt8(RTN_UNICAST, 7);
  return b;
}

export function nlmsg(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const head = Buffer.alloc(NLMSG_HDRLEN);
  head.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(flags, 6);
  head.writeUInt32LE(seq, 8);
  return Buffer.concat([head, body, Buffer.alloc(align4(body.length) - body.length)]);
}

/** A link-creation body: ifinfomsg then attributes. */
export const linkBody = (info: Buffer, attrs: Attr[]): Buffer => Buffer.concat([info, encodeAttrs(attrs)]);

/** IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE none } }. */
export const noIpv6LinkLocal = (): Attr => attr.nest(IFLA_AF_SPEC, attr.nest(AF_INET6, attr.u8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE)));

/**
 * RTM_NEWLINK for a veth pair whose peer is created directly in the namespace of nsFd
 * (amazon-vpc-cni-k8s#3764: moving a link between namespaces afterwards costs an RCU
 * barrier under the RTNL lock). The host end is enslaved to master and brought up.
 */
export function vethBody(o: { hostName: string; peerName: string; nsFd: number; mtu: number; master: number }): Buffer {
  const peer = Buffer.concat([ifinfomsg(), encodeAttrs([attr.str(IFLA_IFNAME, o.peerName), attr.u32(IFLA_NET_NS_FD, o.nsFd), attr.u32(IFLA_MTU, o.mtu)])]);
  return linkBody(ifinfomsg({ flags: IFF_UP, change: IFF_UP }), [
    attr.str(IFLA_IFNAME, o.hostName),
    attr.u32(IFLA_MTU, o.mtu),
    attr.u32(IFLA_MASTER, o.master),
    attr.nest(IFLA_LINKINFO, attr.str(IFLA_INFO_KIND, 'veth'), attr.nest(IFLA_INFO_DATA, attr.raw(VETH_INFO_PEER, peer))),
  ]);
}

/**
 * A bridge with a MAC address of its own (mac, 6 bytes). Without one the kernel gives a
 * bridge the lowest MAC of its ports, which changes as veths join and leave: every
 * container's cached gateway MAC then goes stale until its neighbour entry is probed
 * again (seconds of lost packets; seen as 1 connection in 15 hanging for 3 s in the
 * network bench once bridge seeds added veths during a run).
 */
export function bridgeBody(o: { name: string; mtu: number; mac?: Buffer }): Buffer {
  return linkBody(ifinfomsg({ flags: IFF_UP, change: IFF_UP }), [
    attr.str(IFLA_IFNAME, o.name),
    attr.u32(IFLA_MTU, o.mtu),
    ...(o.mac ? [attr.raw(IFLA_ADDRESS, o.mac)] : []),
    attr.nest(IFLA_LINKINFO, attr.str(IFLA_INFO_KIND, 'bridge')),
  ]);
}

export function addrBody(o: { index: number; address: number; prefixLen: number }): Buffer {
  return Buffer.concat([ifaddrmsg(o), encodeAttrs([attr.ipv4(IFA_LOCAL, o.address), attr.ipv4(IFA_ADDRESS, o.address)])]);
}

export function defaultRouteBody(o: { gateway: number; oif: number }): Buffer {
  return Buffer.concat([rtmsg({ dstLen: 0 }), encodeAttrs([attr.ipv4(RTA_GATEWAY, o.gateway), attr.u32(RTA_OIF, o.oif)])]);
}

export interface Message {
  type: number;
  flags: number;
  seq: number;
  body: Buffer;
}

/** Splits a datagram from the kernel into its messages. */
export function parseMessages(buf: Buffer): Message[] {
  const out: Message[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), body: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

/** The errno of an NLMSG_ERROR (0: an ack). */
export const errorOf = (m: Message): number => -m.body.readInt32LE(0);

export function parseAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export interface LinkInfo {
  index: number;
  name: string;
  mtu: number;
  flags: number;
}

/** An RTM_NEWLINK answer (to GETLINK) as the fields faasbox uses. */
export function parseLink(body: Buffer): LinkInfo {
  const attrs = parseAttrs(body.subarray(16));
  const name = attrs.get(IFLA_IFNAME);
  const mtu = attrs.get(IFLA_MTU);
  return {
    index: body.readInt32LE(4),
    flags: body.readUInt32LE(8),
    name: name ? name.subarray(0, Math.max(0, name.indexOf(0) < 0 ? name.length : name.indexOf(0))).toString() : '',
    mtu: mtu ? mtu.readUInt32LE(0) : 0,
  };
}
