/**
 * nf_tables set-element messages as bytes (<linux/netfilter/nfnetlink.h>,
 * <linux/netfilter/nf_tables.h>): pure encoding, unit-tested without root; nftsets.ts
 * sends them. A container's start adds elements to the policy table's sets (nft.ts)
 * through these instead of forking `nft -f` (5-8 ms a fork here): one batch, one
 * sendmsg, the kernel's transaction applied before the call returns.
 *
 * A batch is BATCH_BEGIN, the element messages, BATCH_END; the kernel applies all of
 * them or none. Keys are the set's concatenated fields, each padded to a 32-bit register
 * (NFT_REG32_SIZE): an address is 4 bytes, a port 2 bytes then 2 of padding. Sets with
 * `flags interval` over a concatenation (allownet, allowport: the pipapo backend) take a
 * range as one element with KEY (its first value) and KEY_END (its last).
 */
import { attr, encodeAttrs, nlmsg, type Attr } from './nlmsg.js';
import { maskOf, type EgressRule } from './cidr.js';

export const NETLINK_NETFILTER = 12;
export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;
export const NFT_MSG_NEWSETELEM = 12;
export const NFT_MSG_DELSETELEM = 14;
export const NFPROTO_INET = 1;
/** Nested attributes carry this flag (libmnl's mnl_attr_nest_start sets it; strict parsers want it). */
export const NLA_F_NESTED = 0x8000;

export const NFTA_SET_ELEM_LIST_TABLE = 1;
export const NFTA_SET_ELEM_LIST_SET = 2;
export const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
export const NFTA_LIST_ELEM = 1;
export const NFTA_SET_ELEM_KEY = 1;
export const NFTA_SET_ELEM_KEY_END = 10;
export const NFTA_DATA_VALUE = 1;

/** The type of an nf_tables message: subsystem in the high byte. */
export const nftType = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;

/** struct nfgenmsg: family, version 0, res_id (big-endian). */
export function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt8(0, 1);
  b.writeUInt16BE(resId, 2);
  return b;
}

/** One element of a set: its key, and for a range its last key. */
export interface SetElement {
  set: string;
  key: Buffer;
  keyEnd?: Buffer;
}

const reg32 = (a: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(a >>> 0);
  return b;
};
const portReg = (p: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(p);
  return b;
};

/**
 * A member's elements, as nft.ts's memberElements writes them in text: `open { ip }`
 * without an allowlist, else `allownet { ip . cidr }` / `allowport { ip . cidr . port }`.
 */
export function memberSetElements(m: { address: number; egress?: EgressRule[] | undefined }): SetElement[] {
  if (!m.egress) return [{ set: 'open', key: reg32(m.address) }];
  return m.egress.map((r) => {
    const first = r.cidr.base >>> 0;
    const last = (first | ~maskOf(r.cidr.prefix)) >>> 0;
    const head = reg32(m.address);
    if (r.port) return { set: 'allowport', key: Buffer.concat([head, reg32(first), portReg(r.port)]), keyEnd: Buffer.concat([head, reg32(last), portReg(r.port)]) };
    return { set: 'allownet', key: Buffer.concat([head, reg32(first)]), keyEnd: Buffer.concat([head, reg32(last)]) };
  });
}

const nest = (type: number, ...nested: Attr[]): Attr => attr.nest(type | NLA_F_NESTED, ...nested);

/** The body of a NEWSETELEM / DELSETELEM for elements of one set of an inet table. */
export function setElemBody(table: string, set: string, elements: SetElement[]): Buffer {
  const list = elements.map((e) =>
    nest(
      NFTA_LIST_ELEM,
      nest(NFTA_SET_ELEM_KEY, attr.raw(NFTA_DATA_VALUE, e.key)),
      ...(e.keyEnd ? [nest(NFTA_SET_ELEM_KEY_END, attr.raw(NFTA_DATA_VALUE, e.keyEnd))] : []),
    ),
  );
  return Buffer.concat([
    nfgenmsg(NFPROTO_INET),
    encodeAttrs([attr.str(NFTA_SET_ELEM_LIST_TABLE, table), attr.str(NFTA_SET_ELEM_LIST_SET, set), nest(NFTA_SET_ELEM_LIST_ELEMENTS, ...list)]),
  ]);
}

export type ElementOp = { op: 'add' | 'delete'; element: SetElement };

/**
 * One transaction: BATCH_BEGIN, a message per op (in order, each acked), BATCH_END.
 * Returns the bytes and the sequence numbers whose acks to wait for.
 */
export function elementBatch(table: string, ops: ElementOp[], firstSeq: number, flags: { request: number; ack: number; create: number }): { bytes: Buffer; seqs: number[] } {
  let seq = firstSeq;
  const parts = [nlmsg(NFNL_MSG_BATCH_BEGIN, flags.request, seq++, nfgenmsg(0, NFNL_SUBSYS_NFTABLES))];
  const seqs: number[] = [];
  for (const o of ops) {
    const type = nftType(o.op === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    // add without EXCL: an element already there is no error (nft's `add element`).
    const f = flags.request | flags.ack | (o.op === 'add' ? flags.create : 0);
    seqs.push(seq);
    parts.push(nlmsg(type, f, seq++, setElemBody(table, o.element.set, [o.element])));
  }
  parts.push(nlmsg(NFNL_MSG_BATCH_END, flags.request, seq++, nfgenmsg(0, NFNL_SUBSYS_NFTABLES)));
  return { bytes: Buffer.concat(parts), seqs };
}

/**
 * A member's removal that cannot fail on a missing element (the kernel aborts a whole
 * batch on the delete of one): each element is added first, a no-op when present.
 */
export function removeOps(elements: SetElement[]): ElementOp[] {
  return elements.flatMap((e) => [
    { op: 'add' as const, element: e },
    { op: 'delete' as const, element: e },
  ]);
}
