/**
 * The zygote against the real kernel (root): it survives bad requests, dies with the
 * worker (taking parked and running containers along), and leaves nothing behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { testEngine, type TestEngine } from '../../support/engine.js';
import { ZygoteLauncher } from '../../../worker/engine/zygote.js';
import { socketpair } from '../../../worker/engine/sys/fdpass.js';
import { ConfigWriter, Rec, ZYGOTE_MAX_CONFIG } from '../../../worker/engine/native/protocol.js';
import { closeSync, openSync } from 'node:fs';

let te: TestEngine;
before(async () => {
  te = await testEngine('zygote');
});
after(async () => {
  await te.engine.close();
  await te.cleanup();
  assert.deepEqual(te.engine.cgroups.list(), [], 'no cgroups left');
});

/** Not running: gone, or a zombie waiting for an unrelated reaper. */
function dead(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
}

async function waitDead(pid: number, what: string): Promise<void> {
  for (let i = 0; i < 100 && !dead(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(dead(pid), `${what} (pid ${pid}) still runs`);
}

/** Sends one raw request and collects what comes back on its sync socket until EOF. */
async function rawRequest(z: ZygoteLauncher, config: Buffer, extra = 0): Promise<string> {
  const [mine, theirs] = socketpair();
  const devnull = openSync('/dev/null', 'r+');
  const extras = Array.from({ length: extra }, () => devnull);
  try {
    z.launch(config, [devnull, devnull, devnull, theirs, ...extras]);
  } finally {
    closeSync(theirs);
    closeSync(devnull);
  }
  const sock = new net.Socket({ fd: mine, readable: true, writable: true });
  let text = '';
  sock.setEncoding('utf8').on('data', (d: string) => (text += d));
  await new Promise((r) => sock.once('close', r));
  return text;
}

test('bad requests are answered on their own sync socket and the zygote carries on', async () => {
  const z = new ZygoteLauncher();
  try {
    const garbage = await rawRequest(z, Buffer.from('not a config at all'));
    assert.match(garbage, /^error monitor: malformed config record/m);
    const zpid = z.pid!;
    assert.ok(zpid > 0);

    const tooBig = await rawRequest(z, Buffer.alloc(ZYGOTE_MAX_CONFIG + 1000, 1));
    assert.match(tooBig, /^error zygote: config larger than ZYGOTE_MAX_CONFIG/m);

    const config = new ConfigWriter().text(Rec.ARG, '/bin/true').text(Rec.ROOTFS, '/nonexistent').text(Rec.EXTRA_FDS, 2).toBuffer();
    const mismatch = await rawRequest(z, config, 1);
    assert.match(mismatch, /^error monitor: config names 2 extra fds, the request carried 1/m);

    assert.equal(z.pid, zpid, 'the same zygote served every request');
    assert.equal(dead(zpid), false);
  } finally {
    await z.close();
  }
});

test('containers launched through the zygote run and report', async () => {
  const c = await te.engine.create({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'exit', '7'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  assert.ok(te.engine.zygote?.pid, 'the engine launched it through its zygote');
  c.start();
  assert.equal((await c.wait()).exitCode, 7);
  await c.delete();
});

test('the zygote, parked and running containers die when the worker is SIGKILLed', async () => {
  const script = `
    const { Engine } = await import(${JSON.stringify(new URL('../../../worker/engine/engine.js', import.meta.url).href)});
    const e = await Engine.open({ stateDir: ${JSON.stringify(te.engine.stateDir)}, cgroupRoot: ${JSON.stringify(te.engine.cgroups.root)} });
    const spec = { rootfs: { layers: ${JSON.stringify(te.layers)} }, process: { args: ['/probe', 'sleep', '100000'] } };
    const parked = await e.create(spec, { stdio: ['ignore', 'ignore', 'ignore'] });
    const running = await e.create(spec, { stdio: ['ignore', 'ignore', 'ignore'] });
    running.start();
    process.stdout.write(JSON.stringify({ zygote: e.zygote.pid, parked: parked.pid, running: running.pid }) + '\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pids = await new Promise<{ zygote: number; parked: number; running: number }>((resolve) =>
    child.stdout!.once('data', (d) => resolve(JSON.parse(String(d)))),
  );
  for (const [what, pid] of Object.entries(pids)) assert.equal(dead(pid), false, `${what} runs before the kill`);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  await waitDead(pids.zygote, 'the zygote');
  await waitDead(pids.parked, 'the parked container');
  await waitDead(pids.running, 'the running container');
  const report = await te.engine.gc();
  assert.equal(report.containers.length, 2, 'gc removed both containers');
});

test('Engine.close stops the zygote once its containers are gone', async () => {
  const r = await te.engine.run({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'true'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  assert.equal(r.exitCode, 0);
  const zpid = te.engine.zygote!.pid!;
  await te.engine.close();
  assert.ok(dead(zpid));
  // Later creates fall back to spawning faasbox-init.
  const again = await te.engine.run({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'true'] } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  assert.equal(again.exitCode, 0);
});
