/**
 * Unix socket pairs and fd passing (SCM_RIGHTS) through libc: what the worker needs to
 * hand a container's fds to the zygote (native/protocol.h) without forking itself.
 * koffi is loaded on first use, so importing this module costs nothing.
 */
import koffi from 'koffi';
import { SyscallError } from './errors.js';

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const EINTR = 4;

// struct msghdr, iovec and cmsghdr on LP64 Linux (x86_64, aarch64): pointers and size_t
// are 8 bytes; cmsg data starts 16 bytes in, and CMSG_SPACE rounds to 8.
const MSGHDR_SIZE = 56;
const IOVEC_SIZE = 16;
const CMSG_HDR = 16;

interface Libc {
  socketpair: (domain: number, type: number, protocol: number, sv: Int32Array) => number;
  sendmsg: (fd: number, msg: Buffer, flags: number) => number | bigint;
}

let libc: Libc | undefined;

function lib(): Libc {
  if (libc) return libc;
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) {
    throw new SyscallError('sendmsg', 95 /* EOPNOTSUPP */, undefined, `the msghdr layout is written for LP64 Linux, not ${process.platform}/${process.arch}`);
  }
  const c = koffi.load('libc.so.6');
  libc = {
    socketpair: c.func('int socketpair(int domain, int type, int protocol, int *sv)'),
    sendmsg: c.func('intptr_t sendmsg(int sockfd, void *msg, int flags)'),
  };
  return libc;
}

/** Whether fd passing works on this platform (the zygote needs it). */
export function fdPassingSupported(): boolean {
  try {
    lib();
    return true;
  } catch {
    return false;
  }
}

/** A connected pair of unix sockets; close-on-exec unless asked otherwise. */
export function socketpair(type: number = SOCK_STREAM, cloexec = true): [number, number] {
  const sv = new Int32Array(2);
  if (lib().socketpair(AF_UNIX, type | (cloexec ? SOCK_CLOEXEC : 0), 0, sv) !== 0) {
    throw new SyscallError('socketpair', koffi.errno());
  }
  return [sv[0]!, sv[1]!];
}

/**
 * Sends data and fds as one message (a single datagram on SOCK_SEQPACKET). Blocks while
 * the peer's queue is full. MSG_NOSIGNAL: a dead peer is an EPIPE error, not a signal.
 *
 * Why the raw buffers are safe: msghdr holds the addresses of `data`, `iov` and `cmsg`
 * (koffi.address gives a Buffer's backing store, which V8 never moves); all four buffers
 * are referenced by this frame until sendmsg returns, and the kernel copies everything
 * during the call, keeping no pointer afterwards.
 */
export function sendFds(sock: number, data: Buffer, fds: readonly number[]): void {
  const { sendmsg } = lib();
  const iov = Buffer.alloc(IOVEC_SIZE);
  iov.writeBigUInt64LE(koffi.address(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const cmsgLen = CMSG_HDR + 4 * fds.length;
  const cmsg = Buffer.alloc(Math.max(8, (cmsgLen + 7) & ~7));
  cmsg.writeBigUInt64LE(BigInt(cmsgLen), 0);
  cmsg.writeInt32LE(SOL_SOCKET, 8);
  cmsg.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((fd, i) => cmsg.writeInt32LE(fd, CMSG_HDR + 4 * i));
  const msg = Buffer.alloc(MSGHDR_SIZE);
  // msg_name = NULL, msg_namelen = 0 (connected socket)
  msg.writeBigUInt64LE(koffi.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (fds.length) {
    msg.writeBigUInt64LE(koffi.address(cmsg), 32);
    msg.writeBigUInt64LE(BigInt(cmsg.length), 40);
  }
  for (;;) {
    const n = Number(sendmsg(sock, msg, MSG_NOSIGNAL));
    if (n >= 0) {
      if (n !== data.length) throw new SyscallError('sendmsg', 90 /* EMSGSIZE */, undefined, `sent ${n} of ${data.length} bytes`);
      return;
    }
    const errno = koffi.errno();
    if (errno !== EINTR) throw new SyscallError('sendmsg', errno, undefined, errno === 90 ? 'message larger than the socket buffer' : undefined);
  }
}
