/**
 * The worker's side of the protocol with faasbox-init. The diagram and the meaning of
 * every record live in protocol.h; protocol.test.ts checks these numbers against it.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const FD_CONFIG = 3;
export const FD_SYNC = 4;
export const FD_EXTRA_BASE = 5;
export const EXIT_BAIL = 125;

/** Zygote mode: the control socket's fd in the zygote and the limits of one request. */
export const ZYGOTE_FD_CONTROL = 3;
/** stdin, stdout, stderr, sync; the extra fds follow. */
export const ZYGOTE_FDS_FIXED = 4;
export const ZYGOTE_MAX_EXTRA_FDS = 64;
export const ZYGOTE_MAX_CONFIG = 196608;

/** Seeds: a container request to a seed carries stdin, stdout, stderr, then the extra fds (the sync socket is the seed's). */
export const SEED_FDS_FIXED = 3;

export const Rec = {
  ARG: 1,
  ENV: 2,
  CWD: 3,
  ROOTFS: 4,
  HOSTNAME: 5,
  UID: 6,
  GID: 7,
  GROUP: 8,
  CLONE_FLAGS: 9,
  CGROUP_PROCS: 10,
  BIND: 11,
  MOUNT: 12,
  MKDIR: 13,
  MKNOD: 14,
  SYMLINK: 15,
  MASK: 16,
  READONLY: 17,
  RLIMIT: 18,
  CAPS: 19,
  SECCOMP: 20,
  NO_NEW_PRIVS: 21,
  LOOPBACK_UP: 22,
  EXTRA_FDS: 23,
  OOM_SCORE_ADJ: 24,
  PROPAGATION: 25,
  UMASK: 26,
  SETSID: 27,
  CGROUP_DIR: 28,
  SEED: 29,
  USERNS: 30,
  PREMOUNT: 31,
} as const;
export type RecType = (typeof Rec)[keyof typeof Rec];

/** Where `npm install` put the binary (native/build/, beside this file's source); EngineOptions.initBin overrides it. */
export function initBinaryPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // Compiled to dist/worker/engine/native/; the binary is built in the source tree.
  const root = here.includes(`${path.sep}dist${path.sep}`) ? here.replace(`${path.sep}dist${path.sep}`, path.sep) : here;
  return path.join(root, 'build', 'faasbox-init');
}

/** Serialises records: u32 type, u32 length, payload (NUL-terminated text, or raw bytes). */
export class ConfigWriter {
  private readonly chunks: Buffer[] = [];

  text(type: RecType, ...fields: (string | number)[]): this {
    for (const f of fields) {
      if (String(f).includes('\0')) throw new TypeError(`NUL byte in config field for record ${type}`);
    }
    return this.raw(type, Buffer.from(fields.map(String).join('\0') + '\0'));
  }

  raw(type: RecType, payload: Buffer): this {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(type, 0);
    head.writeUInt32LE(payload.length, 4);
    this.chunks.push(head, payload);
    return this;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export type SyncMessage =
  | { kind: 'pid'; pid: number }
  | { kind: 'ready' }
  | { kind: 'seeded' }
  | { kind: 'exit'; status: number }
  | { kind: 'init-exit'; status: number }
  | { kind: 'error'; message: string };

export function parseSyncLine(line: string): SyncMessage {
  const sp = line.indexOf(' ');
  const word = sp < 0 ? line : line.slice(0, sp);
  const rest = sp < 0 ? '' : line.slice(sp + 1);
  switch (word) {
    case 'pid':
      return { kind: 'pid', pid: Number(rest) };
    case 'ready':
      return { kind: 'ready' };
    case 'seeded':
      return { kind: 'seeded' };
    case 'exit':
      return { kind: 'exit', status: Number(rest) };
    case 'init-exit':
      return { kind: 'init-exit', status: Number(rest) };
    case 'error':
      return { kind: 'error', message: rest };
    default:
      return { kind: 'error', message: `unexpected message from faasbox-init: ${line}` };
  }
}

/** Decodes a wait(2) status. */
export function decodeWaitStatus(status: number): { exitCode: number | null; signal: number | null } {
  const sig = status & 0x7f;
  if (sig === 0) return { exitCode: (status >> 8) & 0xff, signal: null };
  return { exitCode: null, signal: sig };
}
