/**
 * Doing something inside a container's network namespace from the worker, without a
 * helper process: setns(CLONE_NEWNET) moves only the calling thread, and the worker's
 * JavaScript runs on one thread that no other code uses while a synchronous call is
 * under way; libuv's pool threads (DNS, fs) stay in the host namespace throughout. The
 * thread switches in, creates what must belong to the container's namespace (a netlink
 * socket, which keeps its namespace for life; a /proc/sys file opened there), and
 * switches back before returning, in `finally`.
 */
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import { SyscallError } from '../sys/errors.js';
import { lib } from './netlink.js';

export const CLONE_NEWNET = 0x40000000;

let hostNs: number | undefined;

/** The worker's own namespace, held open once (the thread's, at first use). */
function host(): number {
  hostNs ??= openSync('/proc/thread-self/ns/net', 'r');
  return hostNs;
}

function setns(fd: number, what: string): void {
  if (lib().setns(fd, CLONE_NEWNET) !== 0) throw new SyscallError('setns', koffi.errno(), what, 'needs CAP_SYS_ADMIN; the namespace may be gone');
}

/** A process's network namespace, as a path for inNetns() and openNetns(). */
export const netnsOf = (pid: number): string => `/proc/${pid}/ns/net`;

/** Runs fn with the thread in the network namespace at nsPath (an fd on it is passed too). */
export function inNetns<T>(nsPath: string, fn: (nsFd: number) => T): T {
  const back = host();
  const ns = openNetns(nsPath);
  try {
    setns(ns, nsPath);
    try {
      return fn(ns);
    } finally {
      // Not returning would leave the worker's main thread in a container's namespace: fatal.
      setns(back, 'the worker\'s own network namespace');
    }
  } finally {
    closeSync(ns);
  }
}

/** An fd on a network namespace (for IFLA_NET_NS_FD and setns). */
export function openNetns(nsPath: string): number {
  try {
    return openSync(nsPath, 'r');
  } catch (err) {
    throw new SyscallError('open', (err as NodeJS.ErrnoException).errno ? -(err as NodeJS.ErrnoException).errno! : 2, nsPath, 'the namespace (a container\'s init) is gone');
  }
}
