import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEgress, parseIpv4 } from './cidr.js';
import { elementBatch, memberSetElements, nftType, removeOps, setElemBody, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NLA_F_NESTED } from './nfmsg.js';
import { parseAttrs, parseMessages } from './nlmsg.js';

const ip = (s: string) => parseIpv4(s)!;

test('a member without an allowlist is one key in open; an allowlist is ranges of 32-bit registers, a port padded', () => {
  assert.deepEqual(memberSetElements({ address: ip('10.0.0.5') }), [{ set: 'open', key: Buffer.from([10, 0, 0, 5]) }]);
  const [net, port] = memberSetElements({ address: ip('10.0.0.5'), egress: [parseEgress('198.51.100.0/24'), parseEgress('192.0.2.7:8080')] });
  assert.equal(net!.set, 'allownet');
  assert.deepEqual([...net!.key], [10, 0, 0, 5, 198, 51, 100, 0]);
  assert.deepEqual([...net!.keyEnd!], [10, 0, 0, 5, 198, 51, 100, 255], 'the range ends at the broadcast address');
  assert.equal(port!.set, 'allowport');
  assert.deepEqual([...port!.key], [10, 0, 0, 5, 192, 0, 2, 7, 0x1f, 0x90, 0, 0]);
  assert.deepEqual([...port!.keyEnd!], [10, 0, 0, 5, 192, 0, 2, 7, 0x1f, 0x90, 0, 0]);
  assert.deepEqual(memberSetElements({ address: ip('10.0.0.5'), egress: [] }), [], 'an empty allowlist (a stem cell) has no element: no egress');
});

test('a set-element body names the inet table and set, its elements nested and flagged so', () => {
  const body = setElemBody('fbx-abc', 'open', [{ set: 'open', key: Buffer.from([10, 0, 0, 5]) }]);
  assert.equal(body.readUInt8(0), 1, 'NFPROTO_INET');
  const attrs = parseAttrs(body.subarray(4));
  assert.equal(attrs.get(1)!.toString(), 'fbx-abc\0');
  assert.equal(attrs.get(2)!.toString(), 'open\0');
  // The list attribute's type carries NLA_F_NESTED (parseAttrs masks it off).
  const listType = body.readUInt16LE(4 + 12 + 12 + 2);
  assert.equal(listType, 3 | NLA_F_NESTED);
});

test('a batch is BEGIN, one acked message per op in order, END; a removal adds each element first', () => {
  const els = memberSetElements({ address: ip('10.0.0.5') });
  const { bytes, seqs } = elementBatch('t', removeOps(els), 7, { request: 1, ack: 4, create: 0x400 });
  const msgs = parseMessages(bytes);
  assert.deepEqual(
    msgs.map((m) => m.type),
    [NFNL_MSG_BATCH_BEGIN, nftType(NFT_MSG_NEWSETELEM), nftType(NFT_MSG_DELSETELEM), NFNL_MSG_BATCH_END],
  );
  assert.deepEqual(msgs.map((m) => m.seq), [7, 8, 9, 10]);
  assert.deepEqual(seqs, [8, 9], 'acks awaited for the element messages');
  assert.equal(msgs[1]!.flags, 1 | 4 | 0x400, 'add: request, ack, create (no EXCL: an element present is no error)');
  assert.equal(msgs[2]!.flags, 1 | 4);
  assert.equal(msgs[0]!.body.readUInt16BE(2), 10, 'BEGIN names the nftables subsystem');
});
