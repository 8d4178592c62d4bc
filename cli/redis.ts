/**
 * A redis-server child process: the dev stack's own Redis (and the tests'). Installed
 * from the distribution's packages when missing; data under a directory of ours,
 * append-only persistence on.
 *
 * The dev stack's server (startRedisServer) listens on nothing but a Unix socket that
 * only its owner may open (mode 0700, in a 0700 dir), and requires a password generated
 * once into the data dir (0600): another local user can neither reach it (a loopback TCP
 * port is open to every uid on the machine) nor use a socket path that leaks. The
 * password reaches redis-server on its stdin, never on its command line (which every uid
 * can read in /proc).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import path from 'node:path';

export interface RedisServer {
  /** What clients on this machine use: the Unix socket, with the password (`path?password=...`, as ioredis reads it). */
  url: string;
  /** The Unix socket's path: the only address the server listens on. */
  socket: string;
  /** The file (0600) holding the password. */
  passwordFile: string;
  dir: string;
  pid: number;
  child: ChildProcess;
  /** SIGTERM (redis flushes the AOF), or SIGKILL when graceful is false. */
  stop(graceful?: boolean): Promise<void>;
}

export function redisServerBinary(): string {
  return process.env.FAASBOX_REDIS_SERVER ?? 'redis-server';
}

/** Installs Debian's redis-server if it is not on PATH (root only). */
export function ensureRedisInstalled(log: (line: string) => void = () => {}): void {
  const found = spawnSync('sh', ['-c', `command -v ${redisServerBinary()}`], { stdio: 'ignore' }).status === 0;
  if (found) return;
  if (process.getuid?.() !== 0) throw new Error('redis-server is not installed and installing it needs root: apt-get install redis-server');
  log('installing redis-server from the distribution packages...');
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', 'redis-server']]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status})`);
  }
}

/** Asks the kernel for a free loopback port (redis cannot report the port it bound for 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** A RESP command as bytes. */
function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/**
 * One raw RESP PING (after AUTH when a password is given), without a client library; at
 * a loopback port, or at a Unix socket's path.
 */
export function ping(target: number | string, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = typeof target === 'number' ? connect(target, '127.0.0.1') : connect(target);
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write((password === undefined ? '' : resp('AUTH', password)) + resp('PING')));
    const replies = password === undefined ? 1 : 2;
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.split('\r\n').length > replies) done(buf.endsWith('+PONG\r\n') && (password === undefined || buf.startsWith('+OK\r\n')));
    });
  });
}

/**
 * When redis-server fsyncs its append-only file (appendfsync). `always`: before it
 * answers the write, so an acknowledged write survives a SIGKILL of Redis and a crash of
 * the machine; `everysec`: once a second in the background, so a machine crash (or a
 * SIGKILL while a slow fsync holds the writes back, which Redis does for up to 2 s) may
 * lose up to about a second of acknowledged writes. The cost of each is measured by
 * `npm run bench -- events --only fsync` (README, "Asynchronous delivery").
 */
export const REDIS_FSYNC_MODES = ['always', 'everysec'] as const;
export type RedisFsync = (typeof REDIS_FSYNC_MODES)[number];
/** The dev stack's default: see README "Asynchronous delivery" for the figures that chose it. */
export const DEFAULT_REDIS_FSYNC: RedisFsync = 'always';

export function isRedisFsync(v: unknown): v is RedisFsync {
  return (REDIS_FSYNC_MODES as readonly unknown[]).includes(v);
}

/** AOF on, fsynced as asked; no RDB snapshots (the AOF is the one durable copy). */
function persistenceArgs(fsync: RedisFsync): string[] {
  return ['--appendonly', 'yes', '--appendfsync', fsync, '--save', ''];
}

/** sun_path holds 108 bytes with its NUL; longer socket paths cannot be bound. */
const MAX_SOCKET_PATH = 107;

/**
 * A full Redis refuses writes (OOM) instead of evicting: BullMQ requires noeviction, and
 * eviction would silently drop accepted jobs; the gateway answers 503 STORAGE_FULL.
 */
function memoryArgs(maxMemoryMb: number): string[] {
  return ['--maxmemory', `${maxMemoryMb}mb`, '--maxmemory-policy', 'noeviction'];
}

/**
 * Spawns redis-server on a loopback port with its data (AOF on) in dir, and on a Unix
 * socket (owner only) when one is given.
 */
export function launchRedis(port: number, dir: string, socket?: string, maxMemoryMb = DEFAULT_REDIS_MAXMEMORY_MB, fsync: RedisFsync = 'everysec'): ChildProcess {
  const unix = socket ? ['--unixsocket', socket, '--unixsocketperm', '700'] : [];
  const memory = memoryArgs(maxMemoryMb);
  return spawn(
    redisServerBinary(),
    ['--port', String(port), '--bind', '127.0.0.1', ...unix, ...memory, '--dir', dir, ...persistenceArgs(fsync), '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning', '--logfile', path.join(dir, 'redis.log')],
    { stdio: 'ignore' },
  );
}

/**
 * The dev stack's server: no TCP port (`port 0`), the Unix socket (owner only), and
 * `requirepass` given as a config file on stdin.
 */
export function launchPrivateRedis(dir: string, socket: string, password: string, maxMemoryMb = DEFAULT_REDIS_MAXMEMORY_MB, fsync: RedisFsync = DEFAULT_REDIS_FSYNC): ChildProcess {
  const child = spawn(
    redisServerBinary(),
    ['-', '--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', ...memoryArgs(maxMemoryMb), '--dir', dir, ...persistenceArgs(fsync), '--daemonize', 'no', '--loglevel', 'warning', '--logfile', path.join(dir, 'redis.log')],
    { stdio: ['pipe', 'ignore', 'ignore'] },
  );
  // A server that dies at once is reported by waitForRedis; its closed stdin is no error of ours.
  child.stdin!.on('error', () => {});
  child.stdin!.end(`requirepass ${password}\n`);
  return child;
}

/**
 * Resolves when the server answers PING (at a port, or a socket path with its password);
 * throws (and kills it) if it exits or stays silent for 10 s.
 */
export async function waitForRedis(child: ChildProcess, target: number | string, dir: string, password?: string): Promise<void> {
  let exited: number | null | undefined = child.exitCode ?? undefined;
  child.once('exit', (code) => (exited = code));
  const start = Date.now();
  while (!(await ping(target, password))) {
    if (exited !== undefined) throw new Error(`redis-server exited with ${exited}; see ${path.join(dir, 'redis.log')}`);
    if (Date.now() - start > 10_000) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on ${typeof target === 'number' ? `port ${target}` : target} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Signals exactly this child (never by name) and resolves when it has exited. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** The dev stack's Redis password: generated once into dir (0600), the same on every start. */
export function redisPassword(dir: string): { password: string; file: string } {
  const file = path.join(dir, 'password');
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  return { password: readFileSync(file, 'utf8').trim(), file };
}

/** The dev stack's Redis maxmemory unless configured (FAASBOX_REDIS_MAXMEMORY_MB). */
export const DEFAULT_REDIS_MAXMEMORY_MB = 1024;

export async function startRedisServer(opts: { dir: string; maxMemoryMb?: number; fsync?: RedisFsync }): Promise<RedisServer> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  // Services on this machine talk to it over a Unix socket: measured in bench/invoke, each
  // command written to a loopback TCP socket cost the writer several times more CPU, and
  // an invocation is a dozen commands.
  const socket = path.resolve(opts.dir, 'redis.sock');
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new Error(`the Redis socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes (a Unix socket's limit): choose a shorter FAASBOX_STATE_DIR`);
  }
  const { password, file } = redisPassword(opts.dir);
  const child = launchPrivateRedis(opts.dir, socket, password, opts.maxMemoryMb, opts.fsync);
  await waitForRedis(child, socket, opts.dir, password);
  return {
    // Hex, so nothing in it needs escaping in the query.
    url: `${socket}?password=${password}`,
    socket,
    passwordFile: file,
    dir: opts.dir,
    pid: child.pid!,
    child,
    // SIGTERM lets redis flush its append-only file.
    stop: (graceful = true) => stopChild(child, graceful ? 'SIGTERM' : 'SIGKILL'),
  };
}
