/**
 * The README's newcomer path, as a newcomer runs it: `faasbox up` in one process, then
 * `faasbox deploy`, `invoke`, `logs`, `ls`, `rm` as separate CLI processes that find the
 * gateway and the generated API key through the state dir. SIGTERM ends the stack, and
 * everything it started goes with it: its redis-server, containers, cgroups and mounts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { fileURLToPath } from 'node:url';
import { mountsUnder } from '../../worker/engine/mounts.js';
import { detectCgroupDriver } from '../../worker/engine/cgroups/index.js';
import { InvocationStore } from '../../common/invocations.js';
import { eventually } from '../support/eventually.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/faasbox.js');
const GRACE_MS = 4000;

/** Processes whose command line mentions dir (read from /proc; nothing is signalled). */
function processesMentioning(dir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) out.push(Number(pid));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

test('faasbox up, then deploy / invoke / logs / ls / rm from the CLI, then SIGTERM leaves nothing', { timeout: 180_000 }, async () => {
  const state = mkdtempSync(path.join(tmpdir(), 'faasbox-up-'));
  const cgroupRoot = `/faasbox-test-up-${process.pid}`;
  // As a newcomer's shell has it: no key, no Redis, no gateway URL of its own.
  const env: NodeJS.ProcessEnv = { ...process.env, FAASBOX_STATE_DIR: state, FAASBOX_PORT: '0', FAASBOX_CGROUP_ROOT: cgroupRoot, FAASBOX_REDIS_MAXMEMORY_MB: '256', FAASBOX_DRAIN_GRACE_MS: String(GRACE_MS) };
  for (const name of ['FAASBOX_API_KEY', 'FAASBOX_REDIS_URL', 'FAASBOX_URL', 'FAASBOX_CONFIG']) delete env[name];
  const up = spawn(process.execPath, [bin, 'up', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  up.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => up.once('exit', (code) => resolve(code)));
  try {
    const info = await new Promise<{ gateway: string; redis: string; apiKey: string }>((resolve, reject) => {
      let out = '';
      up.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line));
      });
      void exited.then((code) => reject(new Error(`faasbox up exited with ${code}: ${stderr}`)));
    });
    assert.match(info.gateway, /^http:\/\/127\.0\.0\.1:\d+$/);
    // Its own Redis, reached over a Unix socket in the state dir; the key was generated.
    assert.equal(info.redis, path.join(state, 'redis', 'redis.sock'));
    assert.match(info.apiKey, /^fbx_[A-Za-z0-9_-]{20,}$/);
    // Bounded, and refusing writes rather than evicting accepted jobs when full (BullMQ's requirement).
    const password = readFileSync(path.join(state, 'redis', 'password'), 'utf8').trim();
    const admin = new Redis({ path: info.redis, password });
    try {
      assert.deepEqual(await admin.config('GET', 'maxmemory'), ['maxmemory', String(256 * 1024 * 1024)]);
      assert.deepEqual(await admin.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction']);
    } finally {
      admin.disconnect();
    }

    const cli = (...args: string[]) => {
      const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const deployed = cli('deploy', 'hello', '--code', 'export default async (event) => { console.log("hi from", event.name); return { hello: event.name ?? "world" }; }');
    assert.equal(deployed.code, 0, deployed.err);

    const invoked = cli('invoke', 'hello', '--data', '{"name":"faasbox"}', '--json');
    assert.equal(invoked.code, 0, invoked.err);
    const answer = JSON.parse(invoked.out) as { status: number; invocationId: string; startKind: string; body: string };
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body), { hello: 'faasbox' });
    assert.ok(['warm', 'specialized', 'cold'].includes(answer.startKind), answer.startKind);

    // The README's Python example, as written there.
    const py = cli('deploy', 'hello-py', '--runtime', 'python3', '--code', 'def handler(event, context):\n    return {"hello": event.get("name", "world")}');
    assert.equal(py.code, 0, py.err);
    const pyOut = cli('invoke', 'hello-py', '--data', '{"name":"python"}');
    assert.equal(pyOut.code, 0, pyOut.err);
    assert.deepEqual(JSON.parse(pyOut.out), { hello: 'python' });

    const logs = cli('logs', answer.invocationId, '--json');
    assert.equal(logs.code, 0, logs.err);
    const record = JSON.parse(logs.out) as { status: string; stdout: string };
    assert.equal(record.status, 'succeeded');
    assert.equal(record.stdout, 'hi from faasbox\n');
    const human = cli('logs', answer.invocationId);
    assert.equal(human.code, 0, human.err);
    assert.match(human.out, /^\S+ hello succeeded \((warm|specialized|cold)\)\ntime: queue .*\nresult: \{"hello":"faasbox"\}\nhi from faasbox\n$/);

    // Env values: sealed in Redis, shown by `get` only when asked for.
    const vault = cli('deploy', 'vault', '--env', 'TOKEN=up-test-secret-0123', '--code', 'export default async () => process.env.TOKEN.length');
    assert.equal(vault.code, 0, vault.err);
    assert.ok(!vault.out.includes('up-test-secret-0123'), vault.out);
    const shown = cli('get', 'vault');
    assert.equal(shown.code, 0, shown.err);
    assert.equal(JSON.parse(shown.out).spec.env.TOKEN, null);
    assert.equal(JSON.parse(cli('get', 'vault', '--reveal-env').out).spec.env.TOKEN, 'up-test-secret-0123');
    assert.equal(cli('invoke', 'vault').out.trim(), String('up-test-secret-0123'.length));
    // The secret its callbacks are signed with, derived from the stack's key: one per function.
    const cbSecret = cli('get', 'vault', '--callback-secret');
    assert.equal(cbSecret.code, 0, cbSecret.err);
    assert.match(cbSecret.out.trim(), /^[0-9a-f]{64}$/);
    assert.notEqual(cli('get', 'hello', '--callback-secret').out.trim(), cbSecret.out.trim());
    assert.equal(JSON.parse(cli('get', 'vault', '--callback-secret', '--json').out).secret, cbSecret.out.trim());
    // The key and the Redis password were generated once into the state dir, owner only.
    for (const file of [path.join(state, 'secret-key'), path.join(state, 'redis', 'password')]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
    }

    const listed = cli('ls');
    assert.equal(listed.code, 0, listed.err);
    assert.match(listed.out, /hello/);

    const removed = cli('rm', 'hello');
    assert.equal(removed.code, 0, removed.err);
    const gone = cli('invoke', 'hello');
    assert.notEqual(gone.code, 0);
    assert.match(gone.err, /FUNCTION_NOT_FOUND|not found/i);

    // One grace for the whole stack: a sync request held open past the grace uses up the
    // gateway's drain, and the worker then gets what is left of it, not a grace of its own.
    assert.equal(cli('deploy', 'slow', '--code', 'export default async () => { await new Promise((r) => setTimeout(r, 120000)); return 1; }').code, 0);
    const queued = JSON.parse(cli('invoke', 'slow', '--async', '--json').out) as { invocationId: string };
    const sync = spawn(process.execPath, [bin, 'invoke', 'slow'], { env, stdio: 'ignore' });
    const syncDone = new Promise((resolve) => sync.once('exit', resolve));
    const conn = new Redis({ path: info.redis, password });
    const store = new InvocationStore(conn, 'faasbox');
    try {
      const running = async () => {
        const recs = await Promise.all((await store.idsOf('slow')).map((id) => store.get(id)));
        return recs.filter((r) => r?.status === 'running').length === 2;
      };
      await eventually(running, 60_000, 'the async and the sync invocation of slow to run');
      assert.ok((await store.idsOf('slow')).includes(queued.invocationId));
    } finally {
      conn.disconnect();
    }
    up.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, `faasbox up exited with ${code}: ${stderr}`);
    await syncDone;
    const drained = /drain: (\d+) invocations? still running after (\d+) ms/.exec(stderr);
    assert.ok(drained, `the worker's drain line in: ${stderr}`);
    assert.ok(Number(drained[2]) < GRACE_MS / 2, `the worker waited ${drained[2]} ms of a ${GRACE_MS} ms grace the gateway had used up`);
  } finally {
    if (up.exitCode === null) up.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, `faasbox up exited with ${code}: ${stderr}`);
    // Nothing of the stack is left running, mounted or grouped.
    assert.deepEqual(processesMentioning(state), []);
    assert.deepEqual(mountsUnder(state), []);
    const cgroups = detectCgroupDriver({ root: cgroupRoot });
    assert.deepEqual(cgroups.list(), [], 'cgroups left under the root');
    cgroups.removeRoot();
    rmSync(state, { recursive: true, force: true });
  }
});

test('faasbox up with a FAASBOX_REDIS_FSYNC it does not know exits non-zero naming the setting, having started nothing', { timeout: 30_000 }, () => {
  const state = mkdtempSync(path.join(tmpdir(), 'faasbox-up-fsync-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, FAASBOX_STATE_DIR: state, FAASBOX_REDIS_FSYNC: 'sometimes' };
    for (const name of ['FAASBOX_REDIS_URL', 'FAASBOX_CONFIG']) delete env[name];
    const r = spawnSync(process.execPath, [bin, 'up'], { env, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, /redisFsync \(FAASBOX_REDIS_FSYNC\) must be one of always, everysec; got "sometimes"/);
    assert.deepEqual(readdirSync(state), [], 'no Redis, no key, nothing made');
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
