/**
 * The policy table's set elements changed over nfnetlink (nfmsg.ts encodes them): what a
 * container's create, a stem cell's specialisation and a delete do to the egress
 * policy, with no process forked. The table itself (chains, rules, sets) is still
 * written by `nft -f` (nft.ts), once when the worker starts and when gc rewrites it.
 *
 * Measured here: one batch of a member's elements ~0.05-0.1 ms; the `nft -f` it
 * replaces 5-8 ms a fork, which put a bridge create at ~2x a none create.
 */
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST } from './nlmsg.js';
import { NETLINK_NETFILTER, elementBatch, memberSetElements, removeOps, type ElementOp } from './nfmsg.js';
import { Netlink } from './netlink.js';
import type { Member } from './nft.js';
import { formatIpv4 } from './cidr.js';

export class NftSets {
  private nl: Netlink | undefined;
  /** Batches sent so far (tests, bench). */
  batches = 0;

  constructor(readonly table: string) {}

  /** Adds a member's elements (an `open` address, or its allowlist). */
  add(m: Member): void {
    this.apply(memberSetElements(m).map((element) => ({ op: 'add', element })), `adding ${describe(m)}`);
  }

  /** Removes a member's elements; elements already gone are no error. */
  remove(m: Member): void {
    this.apply(removeOps(memberSetElements(m)), `removing ${describe(m)}`);
  }

  /** Moves an address from one member's elements to another's in one transaction (a stem cell specialised). */
  replace(from: Member, to: Member): void {
    const ops: ElementOp[] = [...removeOps(memberSetElements(from)), ...memberSetElements(to).map((element) => ({ op: 'add' as const, element }))];
    this.apply(ops, `changing ${describe(from)} to ${describe(to)}`);
  }

  close(): void {
    this.nl?.close();
    this.nl = undefined;
  }

  private apply(ops: ElementOp[], what: string): void {
    if (ops.length === 0) return;
    this.nl ??= Netlink.open(NETLINK_NETFILTER);
    const first = this.nl.takeSeqs(ops.length + 2);
    const { bytes, seqs } = elementBatch(this.table, ops, first, { request: NLM_F_REQUEST, ack: NLM_F_ACK, create: NLM_F_CREATE });
    this.batches++;
    this.nl.sendBatch(bytes, seqs, `nft table inet ${this.table}: ${what}`);
  }
}

function describe(m: Member): string {
  const a = formatIpv4(m.address);
  return m.egress ? `the allowlist of ${a} (${m.egress.length} entries)` : `${a} to the open set`;
}
