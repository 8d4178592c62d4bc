/**
 * User-namespace mode against the real kernel: the container's root is a host id range
 * leased to it alone, its layers and binds are idmapped mounts (nothing shared is
 * chowned), and the hostile probes still fail.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { release } from 'node:os';
import { runToEnd, testEngine, type TestEngine } from '../../support/engine.js';
import type { Container } from '../../../worker/engine/container.js';
import type { ContainerSpec } from '../../../worker/engine/spec.js';
import { leasesDir } from '../../../worker/engine/userns/ranges.js';
import { EngineError } from '../../../worker/engine/errors.js';
import { eventually } from '../../support/eventually.js';

let te: TestEngine;
/** Why this kernel cannot run userns containers here (the 6.1 VM: layers on tmpfs, idmapped only from 6.3), or undefined. */
let unsupported: string | undefined;
before(async () => {
  te = await testEngine('userns');
  try {
    const run = await runToEnd(te.engine, spec(['/bin/true']));
    // A container that cannot start would fail every test below with less to go on.
    assert.equal(run.result.exitCode, 0, `a userns /bin/true failed: ${run.result.error ?? ''} ${run.stderr}`);
  } catch (err) {
    if (!(err instanceof EngineError && err.code === 'USERNS_UNSUPPORTED')) throw err;
    unsupported = err.message;
  }
});
after(async () => {
  await te.cleanup();
  // Every lease went with its container.
  assert.deepEqual(existsSync(leasesDir(te.engine.stateDir)) ? readdirSync(leasesDir(te.engine.stateDir)) : [], []);
});

function spec(args: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec {
  return { userns: true, ...extra, rootfs: { layers: te.layers }, process: { uid: 0, gid: 0, ...extra.process, args } };
}

/** Output of a created container, collected until it exits; a stage's failure is appended, so an assertion on the output shows it. */
function collect(c: Container): Promise<string> {
  let out = '';
  c.stdout!.on('data', (d) => (out += d));
  c.stderr!.on('data', (d) => (out += d));
  return c.wait().then((r) => (r.error || r.exitCode !== 0 ? `${out}[exit ${r.exitCode} signal ${r.signal}: ${r.error ?? ''}]` : out));
}


test('inside, id is 0 and /proc/self/uid_map maps it to the leased host range', async (t) => {
  if (unsupported) return t.skip(unsupported);
  const c = await te.engine.create(spec(['/bin/sh', '-c', 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map']), { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const range = c.idRange!;
    assert.ok(range.hostId >= 2 ** 31, `host id ${range.hostId} from the unprivileged base`);
    assert.deepEqual(te.engine.state(c.id)?.userns, { hostId: range.hostId, size: range.size }, 'the state (ctr state) shows the range');
    const out = collect(c);
    c.start();
    const lines = (await out).trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    assert.deepEqual(lines, ['0', '0', `0 ${range.hostId} ${range.size}`, `0 ${range.hostId} ${range.size}`]);
  } finally {
    await c.delete();
  }
});

test('files the container creates belong to its host id; the shared layers stay as they were', async (t) => {
  if (unsupported) return t.skip(unsupported);
  const lowerPasswd = path.join(te.layers[0]!, 'etc/passwd');
  const before = statSync(lowerPasswd);
  const content = readFileSync(lowerPasswd, 'utf8');
  const script = [
    'touch /tmp/made /made',
    // The layer's root-owned 0644 file is the container root's through the idmapped lower dir: it may copy it up and change it.
    'echo "mallory:x:0:0::/:/bin/sh" >> /etc/passwd && chown 123:456 /etc/passwd && chmod 0600 /etc/passwd && echo changed',
    'stat -c "%u %g %a" /etc/passwd',
    'echo up; read x',
  ].join('; ');
  // Capabilities count in the container's namespace only: over its own ids.
  const c = await te.engine.create(spec(['/bin/sh', '-c', script], { process: { capabilities: ['CAP_CHOWN', 'CAP_FOWNER'], args: [] } }), { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    const range = c.idRange!;
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    c.start();
    await eventually(() => out.includes('up'), 30_000, 'the script to write its files');
    assert.match(out, /changed\n123 456 600\n/);
    // Seen from the host: /tmp (a tmpfs of the container's) and the overlay's upper dir.
    const tmp = statSync(`/proc/${c.pid}/root/tmp/made`);
    assert.equal(tmp.uid, range.hostId);
    assert.equal(tmp.gid, range.hostId);
    const upper = statSync(path.join(c.config.paths.upper, 'made'));
    assert.equal(upper.uid, range.hostId);
    const copied = statSync(path.join(c.config.paths.upper, 'etc/passwd'));
    assert.equal(copied.uid, range.hostId + 123, 'container uid 123 is host id base+123');
    assert.equal(copied.gid, range.hostId + 456);
    c.stdin!.end('\n');
    await c.wait();
  } finally {
    await c.delete();
  }
  const after = statSync(lowerPasswd);
  assert.deepEqual([after.uid, after.gid, after.mode, after.size, after.mtimeMs], [before.uid, before.gid, before.mode, before.size, before.mtimeMs], 'the lower file is untouched');
  assert.equal(readFileSync(lowerPasswd, 'utf8'), content);
  assert.equal(before.uid, 0, 'the layer is root\'s on disk, not chowned to any range');
});

test('rlimits above the worker\'s own hard limit are set for a mapped root too (the monitor sets them, as the mapped root may not raise them)', async (t) => {
  if (unsupported) return t.skip(unsupported);
  // The 6.12 VM's hard RLIMIT_NPROC (from its memory) is below the default 16384, and init
  // got EPERM; a limit above this worker's own hard one is that condition on any host.
  const capEff = BigInt('0x' + (/^CapEff:\s+(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'));
  if (!(capEff & (1n << 24n))) return t.skip('the worker has no CAP_SYS_RESOURCE here (a container host), so no hard limit can be raised above its own');
  const hard = Number(/^Max processes\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]);
  const nproc = Number.isFinite(hard) ? hard + 1000 : 16384;
  const run = await runToEnd(te.engine, spec(['/bin/sh', '-c', 'echo nproc=$(ulimit -Hu)'], { process: { rlimits: { nproc, nofile: 2048 }, args: [] } }));
  assert.equal(run.result.exitCode, 0, `${run.result.error ?? ''} ${run.stderr}`);
  assert.equal(run.out.nproc, String(nproc));
});

test('two live containers get disjoint ranges, and their maps say so', async (t) => {
  if (unsupported) return t.skip(unsupported);
  const [a, b] = await Promise.all([1, 2].map(() => te.engine.create(spec(['/bin/sh', '-c', 'read x']), { stdio: ['pipe', 'ignore', 'ignore'] })));
  try {
    const ra = a!.idRange!;
    const rb = b!.idRange!;
    assert.ok(ra.hostId + ra.size <= rb.hostId || rb.hostId + rb.size <= ra.hostId, `${ra.hostId} and ${rb.hostId} overlap`);
    for (const [c, r] of [[a!, ra], [b!, rb]] as const) {
      const map = readFileSync(`/proc/${c.pid}/uid_map`, 'utf8').trim().split(/\s+/).map(Number);
      assert.deepEqual(map, [0, r.hostId, r.size]);
    }
  } finally {
    await Promise.all([a!.delete(), b!.delete()]);
  }
});

test('bind mounts and the code slot are idmapped: host root\'s 0600 files are the container root\'s', async (t) => {
  if (unsupported) return t.skip(unsupported);
  const hostDir = path.join(te.work, 'userns-bind');
  const codeDir = path.join(te.work, 'userns-code');
  for (const [d, f] of [[hostDir, 'secret'], [codeDir, 'index.js']] as const) {
    mkdirSync(d, { recursive: true });
    writeFileSync(path.join(d, f), `${f}-content\n`);
    chmodSync(path.join(d, f), 0o600);
  }
  const c = await te.engine.create(
    spec(['/bin/sh', '-c', 'read x; cat /mnt/bind/secret /var/task/index.js; stat -c "%u %a" /var/task/index.js'], {
      mounts: [{ source: hostDir, destination: '/mnt/bind', readonly: true }],
      slots: [{ name: 'code', destination: '/var/task' }],
    }),
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  try {
    const out = collect(c);
    c.start();
    c.fillSlot('code', codeDir);
    c.stdin!.end('\n');
    assert.equal(await out, 'secret-content\nindex.js-content\n0 600\n');
  } finally {
    await c.delete();
  }
  assert.equal(statSync(path.join(codeDir, 'index.js')).uid, 0, 'the host file is not chowned');
});

test('the hostile probes fail in userns mode as in the default mode', async (t) => {
  if (unsupported) return t.skip(unsupported);
  const probes = ['mount', 'ptrace1', 'rawsock', 'module', 'sysctl', 'unshare', 'kill1', 'chroot', 'mknod'];
  for (const probe of probes) {
    const plain = await runToEnd(te.engine, { rootfs: { layers: te.layers }, process: { args: ['/probe', probe] } });
    for (const uid of [0, 65534]) {
      const ns = await runToEnd(te.engine, spec(['/probe', probe], { process: { uid, gid: uid, args: [] } }));
      assert.equal(ns.result.exitCode, 0, ns.stderr);
      const results = Object.entries(ns.out);
      assert.ok(results.length > 0, `probe ${probe} said nothing`);
      for (const [k, v] of results) {
        // The container's root is init's uid too, so kill(1) is permitted, but the kernel
        // drops it: a pid namespace's init gets no signal it has no handler for from
        // inside (init exits only through its own report, which this result is).
        if (probe === 'kill1' && uid === 0) {
          assert.equal(ns.result.signal, null);
          continue;
        }
        assert.notEqual(v, 'OK', `${probe}: ${k} succeeded as container uid ${uid}`);
      }
      if (uid === 65534) assert.deepEqual(ns.out, plain.out, `probe ${probe}: same answers as without a user namespace`);
    }
  }
  const caps = await runToEnd(te.engine, spec(['/probe', 'caps']));
  for (const k of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.match(caps.stdout, new RegExp(`${k}:\\s+0000000000000000`), k);
  assert.match(caps.stdout, /NoNewPrivs:\s+1/);
  assert.match(caps.stdout, /Seccomp:\s+2/);
  const ps = await runToEnd(te.engine, spec(['/probe', 'ps']));
  assert.equal(ps.out.nprocs, '2', 'only init and the probe are visible');
  const writes = await runToEnd(te.engine, spec(['/probe', 'writeall']));
  assert.equal(writes.out['write /tmp/probe-mark'], 'OK');
});

test('gc frees the range of a container that is gone', async (t) => {
  if (unsupported) return t.skip(unsupported);
  const c = await te.engine.create(spec(['/bin/true']), { stdio: ['ignore', 'ignore', 'ignore'] });
  const leases = leasesDir(te.engine.stateDir);
  const lease = path.join(leases, String(c.idRange!.index));
  try {
    assert.equal(readFileSync(lease, 'utf8'), c.id);
    // A crash that lost the container dir but not the lease (a worker killed mid-delete).
    writeFileSync(path.join(leases, '31000'), 'a-container-that-is-gone');
    await te.engine.gc();
    assert.ok(!existsSync(path.join(leases, '31000')), 'the orphaned lease was freed');
    assert.ok(existsSync(lease), 'the live container keeps its range');
  } finally {
    await c.delete();
  }
  assert.ok(!existsSync(lease), 'delete releases the range');
});

test('a container whose owner died (a worker SIGKILLed) goes with the next gc, and so does its range', async (t) => {
  if (unsupported) return t.skip(unsupported);
  const c = await te.engine.create(spec(['/bin/sh', '-c', 'read x']), { stdio: ['pipe', 'ignore', 'ignore'] });
  const lease = path.join(leasesDir(te.engine.stateDir), String(c.idRange!.index));
  // As a crashed worker leaves it: the state names an owner that no longer runs.
  const state = JSON.parse(readFileSync(c.config.paths.state, 'utf8'));
  writeFileSync(c.config.paths.state, JSON.stringify({ ...state, owner: { pid: state.owner.pid, startTime: 'a-process-long-gone' } }));
  const report = await te.engine.gc();
  assert.ok(report.containers.includes(c.id), JSON.stringify(report));
  assert.ok(!existsSync(lease), 'the range is free again');
  assert.ok(!existsSync(c.config.paths.layers), 'its idmapped layer views are gone');
  await c.wait();
  await c.delete();
});

test('where the kernel cannot, userns is refused as USERNS_UNSUPPORTED naming the feature, and leaves no lease', async (t) => {
  if (!unsupported) return t.skip(`this kernel has idmapped overlays and tmpfs (${release()})`);
  assert.match(unsupported, /user-namespace mode needs .*Linux \d+\.\d+/);
  await assert.rejects(te.engine.create(spec(['/bin/true'])), (e: unknown) => e instanceof EngineError && e.code === 'USERNS_UNSUPPORTED');
  assert.deepEqual(existsSync(leasesDir(te.engine.stateDir)) ? readdirSync(leasesDir(te.engine.stateDir)) : [], []);
});
