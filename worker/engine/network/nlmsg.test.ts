import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addrBody, attr, bridgeBody, defaultRouteBody, encodeAttrs, nlmsg, parseAttrs, parseLink, parseMessages, vethBody,
  IFLA_ADDRESS, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD, NLM_F_ACK, NLM_F_REQUEST, RTM_NEWLINK, VETH_INFO_PEER, ifinfomsg,
} from './nlmsg.js';

test('attributes are length-prefixed and padded to 4 bytes', () => {
  const b = encodeAttrs([attr.str(IFLA_IFNAME, 'eth0'), attr.u32(IFLA_MTU, 1500)]);
  // "eth0\0" is 5 bytes: header 4 + 5 = 9, padded to 12; then 4 + 4 = 8.
  assert.equal(b.length, 20);
  assert.equal(b.readUInt16LE(0), 9);
  assert.equal(b.readUInt16LE(2), IFLA_IFNAME);
  assert.equal(b.subarray(4, 9).toString(), 'eth0\0');
  assert.equal(b.readUInt16LE(12), 8);
  assert.equal(b.readUInt32LE(16), 1500);
});

test('an nlmsghdr carries length, type, flags and sequence', () => {
  const m = nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 7, Buffer.alloc(16));
  assert.equal(m.length, 32);
  assert.equal(m.readUInt32LE(0), 32);
  assert.equal(m.readUInt16LE(4), RTM_NEWLINK);
  assert.equal(m.readUInt16LE(6), 5);
  assert.equal(m.readUInt32LE(8), 7);
  assert.deepEqual(parseMessages(Buffer.concat([m, m])).map((x) => x.seq), [7, 7]);
});

test('a veth request names the host end, its master, and a peer eth0 created in the target namespace', () => {
  const body = vethBody({ hostName: 'fbxabc-2', peerName: 'eth0', nsFd: 42, mtu: 1400, master: 9 });
  assert.equal(body.readUInt32LE(8) & 1, 1, 'host end up');
  const top = parseAttrs(body.subarray(16));
  assert.equal(top.get(IFLA_IFNAME)!.toString(), 'fbxabc-2\0');
  assert.equal(top.get(IFLA_MASTER)!.readUInt32LE(0), 9);
  assert.equal(top.get(IFLA_MTU)!.readUInt32LE(0), 1400);
  const info = parseAttrs(top.get(IFLA_LINKINFO)!);
  assert.equal(info.get(IFLA_INFO_KIND)!.toString(), 'veth\0');
  const peer = parseAttrs(info.get(IFLA_INFO_DATA)!).get(VETH_INFO_PEER)!;
  // The peer is an ifinfomsg of its own, then its attributes.
  const peerAttrs = parseAttrs(peer.subarray(16));
  assert.equal(peerAttrs.get(IFLA_IFNAME)!.toString(), 'eth0\0');
  assert.equal(peerAttrs.get(IFLA_NET_NS_FD)!.readUInt32LE(0), 42);
});

test('addresses and gateways go in network byte order', () => {
  const a = addrBody({ index: 3, address: 0xc6336405, prefixLen: 24 });
  assert.equal(a.readUInt8(0), 2); // AF_INET
  assert.equal(a.readUInt8(1), 24);
  assert.equal(a.readUInt32LE(4), 3);
  assert.deepEqual([...parseAttrs(a.subarray(8)).get(2)!], [198, 51, 100, 5]);
  const r = defaultRouteBody({ gateway: 0xc6336401, oif: 3 });
  assert.equal(r.readUInt8(1), 0, 'dst_len 0: the default route');
  assert.equal(r.readUInt8(4), 254, 'main table');
  assert.deepEqual([...parseAttrs(r.subarray(12)).get(5)!], [198, 51, 100, 1]);
});

test('a GETLINK answer parses into index, name, MTU and flags', () => {
  const body = Buffer.concat([ifinfomsg({ index: 5, flags: 0x1043 }), encodeAttrs([attr.str(IFLA_IFNAME, 'br0'), attr.u32(IFLA_MTU, 9000)])]);
  assert.deepEqual(parseLink(body), { index: 5, name: 'br0', mtu: 9000, flags: 0x1043 });
});

test('a bridge request can fix its MAC address, so that ports joining and leaving never change it', () => {
  const mac = Buffer.from([2, 1, 2, 3, 4, 5]);
  const attrs = parseAttrs(bridgeBody({ name: 'fbxabc', mtu: 1500, mac }).subarray(16));
  assert.deepEqual(attrs.get(IFLA_ADDRESS), mac);
  assert.equal(parseAttrs(bridgeBody({ name: 'fbxabc', mtu: 1500 }).subarray(16)).has(IFLA_ADDRESS), false);
});
