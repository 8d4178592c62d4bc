/**
 * A private redis-server for one test file: its own port on 127.0.0.1, its own temp dir,
 * appendonly on (so persistence across a restart can be tested), and a stop() that kills
 * exactly the pid it spawned. CI has no Redis running, and a shared one would let test
 * files see each other's keys.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  pid: number;
  /** Kill the server (SIGKILL unless graceful) and keep the dir, to restart on the same data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const REDIS_SERVER = process.env.FAASBOX_TEST_REDIS_SERVER ?? 'redis-server';

/** Ask the kernel for a free port; redis cannot bind port 0 and tell us which it got. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** One raw RESP PING; avoids depending on the client library under test. */
function ping(port: number): Promise<boolean> {
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

function launch(port: number, dir: string): ChildProcess {
  const child = spawn(
    REDIS_SERVER,
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--appendonly', 'yes',
      '--save', '',
      '--daemonize', 'no',
      '--protected-mode', 'yes',
      '--loglevel', 'warning',
      '--logfile', path.join(dir, 'redis.log'),
    ],
    { stdio: 'ignore' },
  );
  return child;
}

async function waitReady(child: ChildProcess, port: number, dir: string): Promise<void> {
  const start = Date.now();
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  while (Date.now() - start < 10_000) {
    if (exited !== null) throw new Error(`redis-server exited with ${exited} before answering PING (log: ${dir}/redis.log)`);
    if (await ping(port)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within 10s`);
}

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    // Only the pid this module spawned; never a broad match.
    child.kill(signal);
  });
}

export async function startRedis(): Promise<TestRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-test-redis-'));
  const port = await freePort();
  let child = launch(port, dir);
  try {
    await waitReady(child, port, dir);
  } catch (err) {
    await kill(child, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const handle: TestRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return child.pid ?? -1;
    },
    async restart() {
      // SIGTERM makes redis flush the AOF; what a test of "survives a restart" wants.
      await kill(child, 'SIGTERM');
      child = launch(port, dir);
      await waitReady(child, port, dir);
    },
    async stop() {
      await kill(child, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
