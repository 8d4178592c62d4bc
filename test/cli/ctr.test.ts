/**
 * `faasbox ctr` as a script would use it: exit codes, stdio passthrough, OOM on stderr,
 * JSON output, usage errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, copyFileSync, chmodSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../../images/build.js';
import { probeBinary } from '../support/engine.js';
import { usernsUnavailable } from '../support/userns.js';
import { mountsUnder } from '../../worker/engine/mounts.js';
import { detectCgroupDriver } from '../../worker/engine/cgroups/index.js';
import { eventually } from '../support/eventually.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/faasbox.js');
let work: string;
let rootfs: string;
let probeLayer: string;
const cgroupRoot = `/faasbox-test-ctr-${process.pid}`;

function faasbox(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input,
    encoding: 'utf8',
    env: { ...process.env, FAASBOX_STATE_DIR: path.join(work, 'state'), FAASBOX_CGROUP_ROOT: cgroupRoot },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'faasbox-ctr-cli-'));
  rootfs = (await buildImage('busybox', path.join(work, 'images'))).dir;
  probeLayer = path.join(work, 'probe');
  mkdirSync(probeLayer);
  copyFileSync(probeBinary(), path.join(probeLayer, 'probe'));
  chmodSync(path.join(probeLayer, 'probe'), 0o755);
});

after(() => {
  const gc = faasbox(['ctr', 'gc', '--all', '--json']);
  assert.equal(gc.code, 0, gc.stderr);
  detectCgroupDriver({ root: cgroupRoot }).removeRoot();
  assert.deepEqual(mountsUnder(work), []);
  rmSync(work, { recursive: true, force: true });
});

test('ctr run passes stdio through and exits with the command\'s code', () => {
  const r = faasbox(['ctr', 'run', '--rootfs', rootfs, '--hostname', 'cli-box', '--', 'sh', '-c', 'read x; echo "got $x on $(hostname)"; echo oops >&2; exit 7'], 'hello\n');
  assert.equal(r.code, 7);
  assert.equal(r.stdout, 'got hello on cli-box\n');
  assert.equal(r.stderr, 'oops\n');
  // A finished run leaves no mount behind, the engine's state tmpfs included.
  assert.deepEqual(mountsUnder(work), []);
});

test('with the default cgroup root, a finished ctr run leaves no cgroup behind', () => {
  // No FAASBOX_CGROUP_ROOT: the engine picks /faasbox/<hash of the state dir> and, once
  // it is empty, removes it (and /faasbox, unless another engine still uses it).
  const stateDir = path.join(work, 'default-root-state');
  const r = spawnSync(process.execPath, [bin, 'ctr', 'run', '--state-dir', stateDir, '--rootfs', rootfs, '--', 'true'], {
    encoding: 'utf8',
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'FAASBOX_CGROUP_ROOT')),
  });
  assert.equal(r.status, 0, r.stderr);
  const root = `/faasbox/${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
  const where = ['/sys/fs/cgroup/memory', '/sys/fs/cgroup/pids', '/sys/fs/cgroup'].map((m) => `${m}${root}`);
  assert.deepEqual(where.filter((d) => existsSync(d)), []);
  assert.deepEqual(mountsUnder(stateDir), []);
});

test('ctr run says OOM on stderr and exits 137 when the memory limit kills the command', () => {
  const r = faasbox(['ctr', 'run', '--rootfs', rootfs, '--layer', probeLayer, '--memory', '16m', '--', '/probe', 'memhog', '200']);
  assert.equal(r.code, 137);
  assert.match(r.stderr, /^OOM$/m);
});

test('ctr run --json reports the exit and the usage read from the cgroup', () => {
  const r = faasbox(['ctr', 'run', '--json', '--rootfs', rootfs, '--cpus', '0.5', '--pids', '32', '--', 'true']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stderr.trim().split('\n').pop()!);
  assert.equal(result.exitCode, 0);
  assert.equal(result.oomKilled, false);
  assert.equal(typeof result.usage.cpuUsageUsec, 'number');
});

test('a missing command is reported with exit 127; usage errors exit 2 with a message', () => {
  const missing = faasbox(['ctr', 'run', '--rootfs', rootfs, '--', '/nope']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /exec: \/nope: No such file or directory/);
  const noRootfs = faasbox(['ctr', 'run', '--', 'true']);
  assert.equal(noRootfs.code, 2);
  assert.match(noRootfs.stderr, /needs --rootfs/);
  const badMem = faasbox(['ctr', 'run', '--rootfs', rootfs, '--memory', 'lots', '--', 'true']);
  assert.equal(badMem.code, 2);
  assert.match(badMem.stderr, /--memory must be a size/);
  const badSpec = faasbox(['ctr', 'run', '--rootfs', 'relative', '--', 'true']);
  assert.equal(badSpec.code, 1);
  assert.match(badSpec.stderr, /INVALID_SPEC/);
});

test('ctr --help, list --json and gc --json answer', () => {
  const help = faasbox(['ctr', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: faasbox ctr/);
  const list = faasbox(['ctr', 'list', '--json']);
  assert.equal(list.code, 0);
  assert.deepEqual(JSON.parse(list.stdout), []);
  const gc = faasbox(['ctr', 'gc', '--json']);
  assert.equal(gc.code, 0);
  assert.deepEqual(JSON.parse(gc.stdout), { containers: [], cgroups: [], mounts: [] });
});

test('every ctr command answers --help with its usage, exit 0, and does nothing: a running container stays, gc removes nothing', async () => {
  const id = `help-${process.pid}`;
  const env = { ...process.env, FAASBOX_STATE_DIR: path.join(work, 'state'), FAASBOX_CGROUP_ROOT: cgroupRoot };
  const running = spawn(process.execPath, [bin, 'ctr', 'run', '--rootfs', rootfs, '--id', id, '--', 'sleep', '120'], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => running.once('exit', (code) => r(code)));
  try {
    const stateOf = () => {
      const r = faasbox(['ctr', 'state', id, '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as { status: string }).status : undefined;
    };
    await eventually(() => stateOf() === 'running', 20_000, 'the container to start');
    const cases: [string[], string][] = [
      [['run', '--help', '--rootfs', rootfs, '--id', `${id}-2`, '--', 'sh', '-c', 'exit 3'], 'run'],
      [['run', '-h'], 'run'],
      [['list', '--help'], 'list'],
      [['ls', '-h'], 'list'],
      [['state', id, '--help'], 'state'],
      [['kill', id, '--help'], 'kill'],
      [['kill', '--help', id, 'SIGTERM'], 'kill'],
      [['delete', id, '--help'], 'delete'],
      [['rm', '-h', id], 'delete'],
      [['gc', '--all', '--help'], 'gc'],
      [['gc', '--help'], 'gc'],
    ];
    for (const [args, name] of cases) {
      const r = faasbox(['ctr', ...args]);
      assert.equal(r.code, 0, `ctr ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: faasbox ctr ${name} `), `ctr ${args.join(' ')}`);
      assert.equal(stateOf(), 'running', `ctr ${args.join(' ')} left the container running`);
    }
    const list = faasbox(['ctr', 'list', '--json']);
    assert.deepEqual((JSON.parse(list.stdout) as { id: string }[]).map((c) => c.id), [id], 'no container was made or removed');
    // What follows "--" is the command's own: its --help is not ctr's.
    const own = faasbox(['ctr', 'run', '--rootfs', rootfs, '--', 'sh', '-c', 'echo "$1"', 'sh', '--help']);
    assert.equal(own.code, 0, own.stderr);
    assert.equal(own.stdout, '--help\n');
  } finally {
    faasbox(['ctr', 'kill', id]);
    await exited;
    faasbox(['ctr', 'delete', id]);
  }
});

test('ctr run --userns: root inside is an unprivileged host id range', { skip: usernsUnavailable() }, () => {
  const r = faasbox(['ctr', 'run', '--rootfs', rootfs, '--userns', '--user', '0', '--', 'sh', '-c', 'id -u; cat /proc/self/uid_map']);
  assert.equal(r.code, 0, r.stderr);
  const [uid, map] = r.stdout.trim().split('\n');
  assert.equal(uid, '0');
  const [inside, host, size] = map!.trim().split(/\s+/).map(Number);
  assert.equal(inside, 0);
  assert.ok(host! >= 2 ** 31, `host id ${host}`);
  assert.equal(size, 65536);
  assert.match(faasbox(['ctr', 'run', '--help']).stdout, /--userns/);
});

test('ctr run --read-bps and friends: block I/O limits, usage in --json, bad values exit 2', () => {
  const ok = faasbox(['ctr', 'run', '--rootfs', rootfs, '--read-bps', '50m', '--write-iops', '1000', '--json', '--', 'true']);
  if (ok.code !== 0) {
    // Only a state dir without a block device (the v2 VM's tmpfs) may refuse, and must say why.
    assert.match(ok.stderr, /io cannot be enforced: .*without a block device/);
  } else {
    const result = JSON.parse(ok.stderr.trim().split('\n').pop()!);
    assert.equal(typeof result.usage.ioReadBytes, 'number');
  }
  const bad = faasbox(['ctr', 'run', '--rootfs', rootfs, '--read-bps', 'fast', '--', 'true']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--read-bps/);
  assert.match(faasbox(['ctr', 'run', '--help']).stdout, /--read-bps/);
});
