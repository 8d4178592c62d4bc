/**
 * The container engine against the real kernel (root): each isolation property is
 * checked from inside a container by the probe program (test/fixtures/probe.c).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { runToEnd, testEngine, type ContainerRun, type TestEngine } from '../../support/engine.js';
import type { ContainerSpec } from '../../../worker/engine/spec.js';
import { mountsUnder } from '../../../worker/engine/engine.js';
import { EngineError } from '../../../worker/engine/errors.js';
import { mountSourceAt, STATE_MOUNT_SOURCE } from '../../../worker/engine/state-mount.js';
import { eventually } from '../../support/eventually.js';

let te: TestEngine;
before(async () => {
  te = await testEngine('engine');
});
after(async () => {
  await te.cleanup();
});

function probe(args: string[], extra: Partial<ContainerSpec> = {}): Promise<ContainerRun> {
  return runToEnd(te.engine, {
    ...extra,
    rootfs: { layers: te.layers, ...extra.rootfs },
    process: { ...extra.process, args: ['/probe', ...args] },
  });
}

test('pid 1 is the container init and host processes are invisible', async () => {
  const { out, result } = await probe(['ps']);
  assert.equal(result.exitCode, 0);
  assert.equal(out.pid1, 'faasbox-init');
  assert.equal(out.self, '2', 'the command is the init\'s first child');
  assert.equal(out.nprocs, '2', 'only init and the probe are visible');
});

test('the hostname is the container\'s', async () => {
  const { out } = await probe(['hostname'], { hostname: 'fn-hello' });
  assert.equal(out.hostname, 'fn-hello');
});

test('runs as an unprivileged uid with no capabilities, no_new_privs and seccomp', async () => {
  const id = await probe(['id']);
  assert.equal(id.out.uid, '65534');
  assert.equal(id.out.gid, '65534');
  const caps = await probe(['caps']);
  for (const k of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
    assert.match(caps.stdout, new RegExp(`${k}:\\s+0000000000000000`), k);
  }
  assert.match(caps.stdout, /NoNewPrivs:\s+1/);
  assert.match(caps.stdout, /Seccomp:\s+2/);
});

test('only the loopback interface is visible', async () => {
  const { stdout } = await probe(['ifaces']);
  assert.deepEqual(stdout.trim().split('\n'), ['iface=lo']);
});

test('privileged operations are denied, even to uid 0 inside', async () => {
  for (const uid of [65534, 0]) {
    const p = { process: { args: [], uid, gid: uid } } as Partial<ContainerSpec>;
    assert.equal((await probe(['mount'], p)).out.mount, 'EPERM', `mount as ${uid}`);
    assert.equal((await probe(['ptrace1'], p)).out.ptrace1, 'EPERM', `ptrace of pid 1 as ${uid}`);
    assert.equal((await probe(['rawsock'], p)).out.rawsock, 'EPERM', `raw socket as ${uid}`);
    const mod = await probe(['module'], p);
    assert.equal(mod.out.finit_module, 'EPERM', `finit_module as ${uid}`);
    assert.equal(mod.out.init_module, 'EPERM', `init_module as ${uid}`);
    const sysctl = (await probe(['sysctl'], p)).out.sysctl;
    assert.ok(sysctl === 'EROFS' || sysctl === 'EACCES', `writing /proc/sys as ${uid}: ${sysctl}`);
    const un = await probe(['unshare'], p);
    assert.equal(un.out.unshare, 'EPERM', `unshare(CLONE_NEWUSER) as ${uid}`);
    assert.equal(un.out.unshare_ns, 'EPERM', `unshare(CLONE_NEWNS) as ${uid}`);
    assert.equal((await probe(['mknod'], p)).out.mknod, 'EPERM', `mknod of a block device as ${uid}`);
  }
});

function treeDigest(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      h.update(`${p}:${st?.mode}:${st?.size}:${st?.mtimeMs}\n`);
      if (st?.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return h.digest('hex');
}

test('writes never reach a lower layer, and a new container starts from the pristine snapshot', async () => {
  const before = te.layers.map(treeDigest);
  const w = await probe(['writeall'], { process: { args: [], uid: 0, gid: 0 } });
  assert.equal(w.out['write /probe-mark'], 'OK', 'root inside may write into its own upper dir');
  assert.equal(w.out['unlink /bin/busybox'], 'OK');
  assert.deepEqual(te.layers.map(treeDigest), before, 'lower layers unchanged');
  const again = await probe(['ps'], { process: { args: [], uid: 0, gid: 0 } });
  assert.equal(again.result.exitCode, 0);
  const look = await te.engine.run(
    { rootfs: { layers: te.layers }, process: { args: ['/bin/sh', '-c', 'test ! -e /probe-mark && test -x /bin/busybox'] } },
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
  assert.equal(look.exitCode, 0, 'the marks of the previous container are gone');
});

test('a memory hog is OOM-killed and reported as OOM', async () => {
  const { result } = await probe(['memhog', '256'], { limits: { memoryBytes: 32 * 1024 * 1024 } });
  assert.equal(result.oomKilled, true);
  assert.equal(result.signal, 9);
  assert.ok(result.usage.memoryPeakBytes <= 33 * 1024 * 1024, `peak ${result.usage.memoryPeakBytes}`);
});

test('a process within its memory limit is not reported as OOM', async () => {
  const { result, out } = await probe(['memhog', '8'], { limits: { memoryBytes: 64 * 1024 * 1024 } });
  assert.equal(result.oomKilled, false);
  assert.equal(result.exitCode, 0);
  assert.equal(out.memhog, 'survived 8 MB');
  assert.ok(result.usage.memoryPeakBytes >= 8 * 1024 * 1024, `peak ${result.usage.memoryPeakBytes}`);
});

test('a fork bomb stops at the pids limit', async () => {
  const { out } = await probe(['forkbomb', '200'], { limits: { pids: 16 } });
  assert.equal(out.forkerr, 'EAGAIN');
  // init and the probe itself count against the limit too.
  assert.ok(Number(out.forked) <= 14, `forked ${out.forked}`);
  assert.ok(Number(out.forked) >= 10, `forked ${out.forked}`);
});

test('a CPU spinner is throttled to its quota', async () => {
  const wallMs = 1000;
  const { result } = await probe(['spin', String(wallMs)], { limits: { cpus: 0.2 } });
  const cpuMs = result.usage.cpuUsageUsec / 1000;
  assert.ok(result.usage.throttledPeriods > 0, 'the kernel throttled it');
  assert.ok(cpuMs < wallMs * 0.2 * 1.5, `used ${cpuMs} ms of CPU in ${wallMs} ms at 0.2 cpus`);
  assert.ok(cpuMs > wallMs * 0.2 * 0.5, `used ${cpuMs} ms of CPU`);
});

test('writing past the disk quota fails with ENOSPC', async () => {
  const quota = 8 * 1024 * 1024;
  const inRoot = await probe(['fill', '/big'], { rootfs: { layers: te.layers, diskBytes: quota }, process: { args: [], uid: 0, gid: 0 } });
  assert.equal(inRoot.out.fill, 'ENOSPC');
  assert.ok(Number(inRoot.out.written) <= quota);
  const inTmp = await probe(['fill', '/tmp/big'], { rootfs: { layers: te.layers, diskBytes: quota } });
  assert.equal(inTmp.out.fill, 'ENOSPC');
  assert.ok(Number(inTmp.out.written) <= quota);
});

test('exit codes, signals and exec failures are reported faithfully', async () => {
  assert.equal((await probe(['exit', '3'])).result.exitCode, 3);
  const missing = await te.engine.run({ rootfs: { layers: te.layers }, process: { args: ['/no/such/thing'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  assert.equal(missing.exitCode, 127);
  assert.match(missing.error ?? '', /exec: \/no\/such\/thing: No such file or directory/);

  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'sleep', '10000'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  c.start();
  await new Promise((r) => setTimeout(r, 100));
  await c.kill('SIGTERM');
  const r = await c.wait();
  assert.equal(r.signal, 15, 'SIGTERM forwarded by init to the command');
  await c.delete();
});

test('lifecycle: create parks the process before exec; start, kill, delete; transitions are guarded', async () => {
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'sleep', '10000'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  assert.equal(c.state, 'created');
  assert.equal(te.engine.state(c.id)?.status, 'created');
  // Parked: pid 1 is still faasbox-init itself with no child.
  assert.equal(readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim(), 'faasbox-init');
  assert.equal(readFileSync(`/proc/${c.pid}/task/${c.pid}/children`, 'utf8').trim(), '');
  c.start();
  assert.equal(c.state, 'running');
  assert.throws(() => c.start(), (e: unknown) => e instanceof EngineError && e.code === 'INVALID_STATE');
  assert.ok(te.engine.list().some((s) => s.id === c.id && s.status === 'running'));
  await c.kill();
  const r = await c.wait();
  assert.equal(r.signal, 9);
  assert.equal(c.state, 'stopped');
  await c.delete();
  assert.equal(c.state, 'deleted');
  assert.equal(existsSync(c.config.paths.dir), false);
  assert.deepEqual(mountsUnder(c.config.paths.dir), []);
  assert.equal(te.engine.cgroups.open(c.id), undefined);
});

test('freeze: a spinning container uses no CPU while frozen, cannot be started, runs again after thaw, and is killed while frozen', async () => {
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'spin', '600000'] }, limits: { cpus: 0.5 } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    c.start();
    const cpu = () => c.usage().cpuUsageUsec;
    await eventually(() => cpu() > 20_000, 10_000, 'the probe to spin');
    assert.equal(await c.freeze(), true);
    assert.equal(c.state, 'frozen');
    assert.equal(te.engine.state(c.id)?.status, 'frozen');
    assert.throws(() => c.start(), (e: unknown) => e instanceof EngineError && e.code === 'INVALID_STATE');
    await assert.rejects(c.freeze(), (e: unknown) => e instanceof EngineError && e.code === 'INVALID_STATE');
    const a = cpu();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(cpu() - a < 20_000, `${cpu() - a} us of CPU in 500 ms while frozen`);
    c.thaw();
    assert.equal(c.state, 'running');
    const b = cpu();
    await eventually(() => cpu() > b + 20_000, 10_000, 'the probe to spin again after thaw');
    assert.equal(await c.freeze(), true);
    await c.kill();
    const r = await c.wait();
    assert.equal(r.signal, 9);
    assert.equal(c.state, 'stopped');
  } finally {
    await c.delete();
  }
  assert.equal(te.engine.cgroups.open(c.id), undefined);
});

test('a frozen container gets a SIGTERM once thawed by kill(), and delete() of a frozen one leaves nothing', async () => {
  const spec = { rootfs: { layers: te.layers }, process: { args: ['/probe', 'sleep', '10000'] } };
  const a = await te.engine.create(spec, { stdio: ['ignore', 'ignore', 'ignore'] });
  a.start();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await a.freeze(), true);
  await a.kill('SIGTERM');
  assert.equal(a.state, 'running', 'thawed so the signal is acted on');
  assert.equal((await a.wait()).signal, 15);
  await a.delete();
  const b = await te.engine.create(spec, { stdio: ['ignore', 'ignore', 'ignore'] });
  b.start();
  const pids = () => te.engine.cgroups.open(b.id)?.pids() ?? [];
  await eventually(() => pids().length >= 2, 10_000, 'init and the probe');
  const members = pids();
  assert.equal(await b.freeze(), true);
  await b.delete();
  assert.equal(b.state, 'deleted');
  assert.equal(te.engine.cgroups.open(b.id), undefined);
  assert.equal(existsSync(b.config.paths.dir), false);
  for (const pid of members) assert.equal(existsSync(`/proc/${pid}`), false, `pid ${pid} is gone`);
});


test('kill reaches every process of the container, forks included', async () => {
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/bin/sh', '-c', 'sleep 1000 & sleep 1000 & sleep 1000'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  c.start();
  await new Promise((r) => setTimeout(r, 150));
  assert.ok(c.stats().pidsCurrent >= 4, `pids ${c.stats().pidsCurrent}`);
  await c.kill();
  await c.wait();
  assert.equal(c.stats().pidsCurrent, 0);
  await c.delete();
});

test('a container killed while parked is reported and deleted cleanly', async () => {
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'true'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  await c.kill();
  const r = await c.wait();
  assert.equal(r.signal, 9);
  await c.delete();
});

test('container state lives on the engine\'s own tmpfs, unmounted once the last container is gone', async () => {
  const dir = path.join(te.engine.stateDir, 'containers');
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'ps'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  assert.equal(mountSourceAt(dir), STATE_MOUNT_SOURCE);
  assert.ok(existsSync(path.join(dir, c.id, 'state.json')));
  c.start();
  await c.wait();
  await c.delete();
  await te.engine.gc();
  assert.equal(mountSourceAt(dir), undefined, 'released with nothing left in it');
});

test('invalid specs are refused with a typed error naming the field', async () => {
  const bad: [Partial<ContainerSpec>, string][] = [
    [{ rootfs: { layers: [] } }, 'rootfs.layers'],
    [{ rootfs: { layers: ['relative/dir'] } }, 'rootfs.layers[0]'],
    [{ process: { args: [] } }, 'process.args'],
    [{ limits: { memoryBytes: -1 } }, 'limits.memoryBytes'],
    [{ limits: { cpus: 0 } }, 'limits.cpus'],
    [{ limits: { cpus: 0.5, cpuBurst: 1 } }, 'limits.cpuBurst'],
    [{ limits: { cpus: 0.5, cpuBurst: -0.1 } }, 'limits.cpuBurst'],
    [{ hostname: 'no spaces' }, 'hostname'],
    [{ process: { args: ['x'], env: ['NOEQUALS'] } }, 'process.env'],
  ];
  for (const [extra, field] of bad) {
    const spec = { rootfs: { layers: te.layers }, process: { args: ['/probe'] }, ...extra } as ContainerSpec;
    await assert.rejects(te.engine.create(spec), (e: unknown) => e instanceof EngineError && e.code === 'INVALID_SPEC' && (e.details as { field: string }).field === field, field);
  }
});

test('gc removes what a crashed owner left: processes, cgroups, mounts, state', async () => {
  // A separate Node process creates a container, then dies by SIGKILL without cleaning up.
  const script = `
    const { Engine } = await import(${JSON.stringify(new URL('../../../worker/engine/engine.js', import.meta.url).href)});
    const e = await Engine.open({ stateDir: ${JSON.stringify(te.engine.stateDir)}, cgroupRoot: ${JSON.stringify(te.engine.cgroups.root)} });
    const c = await e.create({ rootfs: { layers: ${JSON.stringify(te.layers)} }, process: { args: ['/probe', 'sleep', '100000'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
    c.start();
    process.stdout.write(c.id + '\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const id = await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d).trim())));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(te.engine.cgroups.open(id), 'the crashed owner left a cgroup');
  assert.ok(mountsUnder(path.join(te.engine.stateDir, 'containers', id)).length > 0, 'and mounts');
  const report = await te.engine.gc();
  assert.ok(report.containers.includes(id));
  assert.equal(te.engine.cgroups.open(id), undefined);
  assert.deepEqual(mountsUnder(path.join(te.engine.stateDir, 'containers', id)), []);
  assert.equal(existsSync(path.join(te.engine.stateDir, 'containers', id)), false);
});
