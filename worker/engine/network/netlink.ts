/**
 * An rtnetlink socket (AF_NETLINK, NETLINK_ROUTE) through libc: links, addresses and
 * routes without forking `ip`. Each request is synchronous: the kernel handles an
 * rtnetlink request inside sendto() and queues its ack before the call returns, so the
 * recv that follows never waits on anything but the RTNL lock (measured: a veth pair
 * with its addresses and route, ~0.3-1 ms here; `ip` forks cost ~3 ms each).
 *
 * A socket belongs to the network namespace it was created in: Netlink.inNetns() makes
 * one inside a container's namespace (see netns.ts), which is how the container's eth0
 * gets its address and route.
 */
import { closeSync } from 'node:fs';
import koffi from 'koffi';
import { SyscallError } from '../sys/errors.js';
import {
  addrBody, bridgeBody, defaultRouteBody, errorOf, ifinfomsg, linkBody, nlmsg, parseLink, parseMessages, attr, vethBody,
  IFF_UP, IFLA_IFNAME, NETLINK_ROUTE, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
  RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE, type LinkInfo,
} from './nlmsg.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const EINTR = 4;
export const ENODEV = 19;
export const EEXIST = 17;
export const EOPNOTSUPP = 95;

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  send: (fd: number, buf: Buffer, len: number, flags: number) => number | bigint;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number | bigint;
  setns: (fd: number, nstype: number) => number;
}

let libc: Libc | undefined;
export function lib(): Libc {
  if (libc) return libc;
  const c = koffi.load('libc.so.6');
  libc = {
    socket: c.func('int socket(int domain, int type, int protocol)'),
    send: c.func('intptr_t send(int fd, void *buf, size_t len, int flags)'),
    recv: c.func('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    setns: c.func('int setns(int fd, int nstype)'),
  };
  return libc;
}

const HINTS: Record<number, string> = {
  [EOPNOTSUPP]: 'the kernel lacks this link kind (veth or bridge module)',
  [EEXIST]: 'it already exists',
  [ENODEV]: 'no such interface',
  1: 'needs CAP_NET_ADMIN',
};

export class Netlink {
  private seq = 1;
  private readonly buf = Buffer.alloc(65536);

  private constructor(readonly fd: number) {}

  /** A socket in the caller's (the worker's) network namespace; protocol NETLINK_NETFILTER for nf_tables (nftsets.ts). */
  static open(protocol = NETLINK_ROUTE): Netlink {
    const fd = lib().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw new SyscallError('socket', koffi.errno(), `AF_NETLINK protocol ${protocol}`, protocol === NETLINK_ROUTE ? 'the kernel has no rtnetlink?' : 'the kernel has no nfnetlink (nf_tables)?');
    return new Netlink(fd);
  }

  /** The next sequence numbers for a batch of n messages (nftsets.ts builds it). */
  takeSeqs(n: number): number {
    const first = this.seq;
    this.seq += n;
    return first;
  }

  /**
   * Sends a batch already encoded and waits for an ack of every seq in seqs; the first
   * error the kernel reports is thrown (the kernel has then aborted the whole batch).
   */
  sendBatch(bytes: Buffer, seqs: number[], what: string): void {
    const pending = new Set(seqs);
    // BATCH_BEGIN's seq precedes the first element's: a batch refused as a whole answers on it.
    const lo = Math.min(...seqs) - 1;
    const hi = Math.max(...seqs) + 1;
    this.send(bytes, what);
    while (pending.size) {
      for (const m of this.receive(what)) {
        if (m.type !== NLMSG_ERROR || m.seq < lo || m.seq > hi) continue;
        const errno = errorOf(m);
        if (errno !== 0) throw new SyscallError('netlink nf_tables batch', errno, what, errno === 2 ? 'no such table or set (was the policy table removed?)' : HINTS[errno]);
        pending.delete(m.seq);
      }
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Sends one request and waits for its ack; throws the kernel's errno as a SyscallError naming what. */
  request(type: number, flags: number, body: Buffer, what: string): void {
    const seq = this.seq++;
    this.send(nlmsg(type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, body), what);
    for (;;) {
      for (const m of this.receive(what)) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const errno = errorOf(m);
          if (errno !== 0) throw new SyscallError(`netlink ${opName(type)}`, errno, what, HINTS[errno]);
          return;
        }
      }
    }
  }

  /** RTM_GETLINK by name; undefined when there is no such link. */
  link(name: string): LinkInfo | undefined {
    const seq = this.seq++;
    this.send(nlmsg(RTM_GETLINK, NLM_F_REQUEST, seq, linkBody(ifinfomsg(), [attr.str(IFLA_IFNAME, name)])), name);
    for (;;) {
      for (const m of this.receive(name)) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const errno = errorOf(m);
          if (errno === ENODEV) return undefined;
          throw new SyscallError('netlink RTM_GETLINK', errno, name, HINTS[errno]);
        }
        if (m.type === RTM_NEWLINK) return parseLink(m.body);
        if (m.type === NLMSG_DONE) return undefined;
      }
    }
  }

  /** A bridge, up; mac: its fixed address (see bridgeBody). */
  createBridge(name: string, mtu: number, mac?: Buffer): void {
    this.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, bridgeBody({ name, mtu, ...(mac ? { mac } : {}) }), name);
  }

  /** A veth pair: hostName (up, on master) here, peerName inside the namespace of nsFd. */
  createVeth(o: { hostName: string; peerName: string; nsFd: number; mtu: number; master: number }): void {
    this.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, vethBody(o), o.hostName);
  }

  setUp(index: number, what: string): void {
    this.request(RTM_NEWLINK, 0, ifinfomsg({ index, flags: IFF_UP, change: IFF_UP }), what);
  }

  addAddress(index: number, address: number, prefixLen: number, what: string): void {
    this.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, addrBody({ index, address, prefixLen }), what);
  }

  addDefaultRoute(gateway: number, oif: number, what: string): void {
    this.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, defaultRouteBody({ gateway, oif }), what);
  }

  /** Deletes a link by name (a veth takes its peer along); false when it was already gone. */
  deleteLink(name: string): boolean {
    try {
      this.request(RTM_DELLINK, 0, linkBody(ifinfomsg(), [attr.str(IFLA_IFNAME, name)]), name);
      return true;
    } catch (err) {
      if (err instanceof SyscallError && err.errno === ENODEV) return false;
      throw err;
    }
  }

  private send(msg: Buffer, what: string): void {
    for (;;) {
      const n = Number(lib().send(this.fd, msg, msg.length, 0));
      if (n === msg.length) return;
      const errno = koffi.errno();
      if (n < 0 && errno === EINTR) continue;
      throw new SyscallError('send', n < 0 ? errno : 90, `netlink ${what}`);
    }
  }

  private receive(what: string): ReturnType<typeof parseMessages> {
    for (;;) {
      const n = Number(lib().recv(this.fd, this.buf, this.buf.length, 0));
      if (n >= 0) return parseMessages(this.buf.subarray(0, n));
      const errno = koffi.errno();
      if (errno !== EINTR) throw new SyscallError('recv', errno, `netlink ${what}`);
    }
  }
}

function opName(type: number): string {
  return ({ [RTM_NEWLINK]: 'RTM_NEWLINK', [RTM_DELLINK]: 'RTM_DELLINK', [RTM_NEWADDR]: 'RTM_NEWADDR', [RTM_NEWROUTE]: 'RTM_NEWROUTE' } as Record<number, string>)[type] ?? `type ${type}`;
}
