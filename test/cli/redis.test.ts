/**
 * The dev stack's redis-server, started as `faasbox up` starts it (startRedisServer), is
 * closed to every other local user: no TCP port at all, a Unix socket only its owner may
 * open, and a password (in a 0600 file) without which even the owner's connections are
 * refused every command.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_REDIS_FSYNC, startRedisServer } from '../../cli/redis.js';

const NOBODY = 65534;

/** redis-cli against the socket, as uid (root when undefined); its stdout and stderr together. */
function cli(socket: string, args: string[], opts: { uid?: number; password?: string } = {}): string {
  const auth = opts.password === undefined ? [] : ['-a', opts.password, '--no-auth-warning'];
  const r = spawnSync('redis-cli', ['-s', socket, ...auth, ...args], {
    encoding: 'utf8',
    timeout: 10_000,
    ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
  });
  return `${r.stdout}${r.stderr}`.trim();
}

/** The inodes of the TCP sockets (v4 and v6) in LISTEN state in this network namespace. */
function listeningTcpInodes(): Set<string> {
  const out = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A') out.add(f[9] as string); // st 0A = TCP_LISTEN; field 9 is the inode
    }
  }
  return out;
}

/** The socket inodes a process holds open. */
function socketInodes(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(m[1] as string);
    } catch {
      // closed while we looked
    }
  }
  return out;
}

test('the dev stack Redis: no TCP port, socket refused to uid nobody, every command refused without the password', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-devredis-'));
  const redis = await startRedisServer({ dir: path.join(dir, 'redis') });
  try {
    const password = readFileSync(redis.passwordFile, 'utf8').trim();
    assert.match(password, /^[0-9a-f]{64}$/);
    assert.equal(statSync(redis.passwordFile).mode & 0o777, 0o600);
    assert.ok(!readFileSync(`/proc/${redis.pid}/cmdline`, 'utf8').includes(password), 'the password is on the command line');

    // The owner, with the password, is served; the server has no TCP listener at all.
    assert.equal(cli(redis.socket, ['PING'], { password }), 'PONG');
    assert.deepEqual(cli(redis.socket, ['CONFIG', 'GET', 'port'], { password }).split('\n'), ['port', '0']);
    const listening = listeningTcpInodes();
    const held = socketInodes(redis.pid);
    assert.ok(held.length > 0, 'redis-server holds no socket at all');
    assert.deepEqual(held.filter((i) => listening.has(i)), [], 'redis-server listens on a TCP port');

    // Without the password, even the owner gets nothing done.
    assert.equal(cli(redis.socket, ['SET', 'faasbox:probe', 'x']).split('\n')[0], 'NOAUTH Authentication required.');
    for (const cmd of [['PING'], ['GET', 'faasbox:probe'], ['KEYS', '*'], ['DEL', 'faasbox:probe'], ['CONFIG', 'GET', 'requirepass']]) {
      assert.match(cli(redis.socket, cmd), /^NOAUTH/, cmd.join(' '));
    }

    // As uid nobody: the password file cannot be read, and the socket cannot be opened,
    // even with the password (as if both had leaked).
    const cat = spawnSync('cat', [redis.passwordFile], { encoding: 'utf8', uid: NOBODY, gid: NOBODY });
    assert.notEqual(cat.status, 0);
    assert.equal(cat.stdout, '');
    for (const opts of [{ uid: NOBODY }, { uid: NOBODY, password }]) {
      for (const cmd of [['PING'], ['SET', 'faasbox:probe', 'x'], ['KEYS', '*']]) {
        assert.match(cli(redis.socket, cmd, opts), /Permission denied/, `${cmd.join(' ')} as nobody${opts.password ? ' with the password' : ''}`);
      }
    }
    assert.equal(cli(redis.socket, ['EXISTS', 'faasbox:probe'], { password }), '0');
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the dev stack\'s Redis keeps an append-only file fsynced as FAASBOX_REDIS_FSYNC says (always by default), no RDB snapshots', { timeout: 60_000 }, async () => {
  for (const fsync of [undefined, 'everysec', 'always'] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-redis-fsync-'));
    const server = await startRedisServer({ dir, ...(fsync ? { fsync } : {}) });
    try {
      const password = readFileSync(server.passwordFile, 'utf8').trim();
      assert.equal(cli(server.socket, ['CONFIG', 'GET', 'appendonly'], { password }), 'appendonly\nyes');
      assert.equal(cli(server.socket, ['CONFIG', 'GET', 'appendfsync'], { password }), `appendfsync\n${fsync ?? DEFAULT_REDIS_FSYNC}`);
      assert.equal(cli(server.socket, ['CONFIG', 'GET', 'save'], { password }), 'save');
    } finally {
      await server.stop(false);
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
