/**
 * A private redis-server for one test file: its own port on 127.0.0.1, its own temp dir,
 * appendonly on (so persistence across a restart can be tested), and a stop() that kills
 * exactly the pid it spawned. CI has no Redis running, and a shared one would let test
 * files see each other's keys.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { freePort, launchRedis, stopChild, waitForRedis, type RedisFsync } from '../../cli/redis.js';

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  pid: number;
  /** Kill the server (SIGTERM, so the AOF is flushed) and start it again on the same data. */
  restart(): Promise<void>;
  /** SIGKILL, exactly this pid: nothing is flushed (what `appendfsync always` must survive). */
  kill(): Promise<void>;
  /** Start it again after kill(): the same port and data dir. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(opts: { fsync?: RedisFsync } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-test-redis-'));
  const port = await freePort();
  const launch = () => launchRedis(port, dir, undefined, undefined, opts.fsync);
  let child = launch();
  try {
    await waitForRedis(child, port, dir);
  } catch (err) {
    await stopChild(child, 'SIGKILL');
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
      await stopChild(child, 'SIGTERM');
      child = launch();
      await waitForRedis(child, port, dir);
    },
    async kill() {
      await stopChild(child, 'SIGKILL');
    },
    async start() {
      child = launch();
      await waitForRedis(child, port, dir);
    },
    async stop() {
      await stopChild(child, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

/**
 * The calling test file's redis-server: registers a before hook that starts it and an
 * after hook that stops it. Usable inside the file's tests and hooks.
 */
export function redisForFile(): TestRedis {
  let server: TestRedis | undefined;
  const started = (): TestRedis => {
    if (!server) throw new Error('the test file\'s redis-server is used before its before hook ran');
    return server;
  };
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server?.stop();
  });
  return {
    get url() {
      return started().url;
    },
    get port() {
      return started().port;
    },
    get dir() {
      return started().dir;
    },
    get pid() {
      return started().pid;
    },
    restart: () => started().restart(),
    kill: () => started().kill(),
    start: () => started().start(),
    stop: () => started().stop(),
  };
}

/**
 * The calling test file's redis-server with one ioredis client to it: registers the hooks
 * that start both (handing the client to `take`) and end both after the file.
 */
export function redisClientForFile(take: (client: Redis, server: TestRedis) => void): void {
  let server: TestRedis | undefined;
  let client: Redis | undefined;
  before(async () => {
    server = await startRedis();
    client = new Redis(server.url);
    take(client, server);
  });
  after(async () => {
    client?.disconnect();
    await server?.stop();
  });
}
