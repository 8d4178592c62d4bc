/**
 * A redis-server child process: the dev stack's own Redis (and the tests'). Installed
 * from the distribution's packages when missing; data under a directory of ours,
 * append-only persistence on, bound to loopback.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import path from 'node:path';

export interface RedisServer {
  /** What clients on this machine use: the Unix socket when there is one, else tcpUrl. */
  url: string;
  tcpUrl: string;
  /** The Unix socket's path (absent when the data dir's path is too long for one). */
  socket?: string;
  port: number;
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

/** One raw RESP PING, without a client library. */
export function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

/** sun_path holds 108 bytes with its NUL; longer socket paths cannot be bound. */
const MAX_SOCKET_PATH = 107;

/**
 * Spawns redis-server on a loopback port with its data (AOF on) in dir, and on a Unix
 * socket (owner only) when one is given.
 */
export function launchRedis(port: number, dir: string, socket?: string, maxMemoryMb = DEFAULT_REDIS_MAXMEMORY_MB): ChildProcess {
  const unix = socket ? ['--unixsocket', socket, '--unixsocketperm', '700'] : [];
  // A full Redis refuses writes (OOM) instead of evicting: BullMQ requires noeviction, and
  // eviction would silently drop accepted jobs; the gateway answers 503 STORAGE_FULL.
  const memory = ['--maxmemory', `${maxMemoryMb}mb`, '--maxmemory-policy', 'noeviction'];
  return spawn(
    redisServerBinary(),
    ['--port', String(port), '--bind', '127.0.0.1', ...unix, ...memory, '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning', '--logfile', path.join(dir, 'redis.log')],
    { stdio: 'ignore' },
  );
}

/** Resolves when the server answers PING; throws (and kills it) if it exits or stays silent for 10 s. */
export async function waitForRedis(child: ChildProcess, port: number, dir: string): Promise<void> {
  let exited: number | null | undefined = child.exitCode ?? undefined;
  child.once('exit', (code) => (exited = code));
  const start = Date.now();
  while (!(await ping(port))) {
    if (exited !== undefined) throw new Error(`redis-server exited with ${exited}; see ${path.join(dir, 'redis.log')}`);
    if (Date.now() - start > 10_000) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on port ${port} within 10 s`);
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

/** The dev stack's Redis maxmemory unless configured (FAASBOX_REDIS_MAXMEMORY_MB). */
export const DEFAULT_REDIS_MAXMEMORY_MB = 1024;

export async function startRedisServer(opts: { dir: string; port?: number; maxMemoryMb?: number }): Promise<RedisServer> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const port = opts.port ?? (await freePort());
  // Services on this machine talk to it over a Unix socket: measured in bench/invoke, each
  // command written to a loopback TCP socket cost the writer several times more CPU, and
  // an invocation is a dozen commands.
  const socket = path.resolve(opts.dir, 'redis.sock');
  const withSocket = Buffer.byteLength(socket) <= MAX_SOCKET_PATH;
  const child = launchRedis(port, opts.dir, withSocket ? socket : undefined, opts.maxMemoryMb);
  await waitForRedis(child, port, opts.dir);
  const tcpUrl = `redis://127.0.0.1:${port}`;
  return {
    url: withSocket ? socket : tcpUrl,
    tcpUrl,
    ...(withSocket ? { socket } : {}),
    port,
    dir: opts.dir,
    pid: child.pid!,
    child,
    // SIGTERM lets redis flush its append-only file.
    stop: (graceful = true) => stopChild(child, graceful ? 'SIGTERM' : 'SIGKILL'),
  };
}
