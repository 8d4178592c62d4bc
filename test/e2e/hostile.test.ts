/**
 * Hostile functions, deployed and invoked like any other, through HTTP: a fork bomb, a
 * disk filler, a CPU spinner and an escape attempt. Each gets a clear outcome, stays
 * inside its container's limits, and leaves the platform serving the next invocation.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';

let s: TestStack;
before(async () => {
  s = await startStack('hostile');
  const d = await s.deploy('canary', { runtime: 'nodejs20', code: 'export default async (e) => e.n' });
  assert.equal(d.status, 201, d.text);
});
after(async () => {
  await s.close();
});

/** The platform still serves: a fresh, harmless function answers. */
async function stillServes(): Promise<void> {
  const r = await s.invoke('canary', { n: 1 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json, 1);
}

/** Processes in a container's cgroup, as the kernel counts them (pids.current). */
function pidsOf(containerId: string): number | undefined {
  try {
    return s.worker.engine.cgroups.open(containerId)?.stats().pidsCurrent;
  } catch {
    return undefined; // the container ended while we looked
  }
}

test('a fork bomb stops at the pids limit; its invocation times out, its whole cgroup is killed', async () => {
  await s.deploy('forkbomb', {
    runtime: 'nodejs20',
    timeoutMs: 1500,
    code: `import { spawn } from 'node:child_process';
export default async () => {
  spawn('/bin/sh', ['-c', 'b() { b | b & }; b'], { stdio: 'ignore', detached: true }).unref();
  await new Promise((r) => setTimeout(r, 60_000));
};`,
  });
  const t = Date.now();
  const pending = s.invoke('forkbomb');
  let peak = 0;
  const watch = setInterval(() => {
    for (const slot of s.worker.pool.slots().filter((x) => x.fn?.startsWith('forkbomb@'))) peak = Math.max(peak, pidsOf(slot.id) ?? 0);
  }, 20);
  const r = await pending;
  clearInterval(watch);
  assert.equal(r.status, 504, r.text);
  assert.equal(r.json.error.code, 'TIMEOUT');
  assert.ok(Date.now() - t < 10_000);
  assert.ok(peak > 2, `the bomb went off (peak ${peak} processes)`);
  assert.ok(peak <= 64, `and stopped at the pids limit (peak ${peak})`);
  await eventually(() => !s.worker.pool.slots().some((x) => x.fn?.startsWith('forkbomb@')), 5000, 'the bombed container to go');
  await stillServes();
});

test('a disk filler gets ENOSPC at its quota in /tmp and may not write the image at all', async () => {
  await s.deploy('filler', {
    runtime: 'nodejs20',
    code: `import { writeFileSync, appendFileSync, rmSync } from 'node:fs';
const fill = (file) => { const mb = Buffer.alloc(1 << 20, 7); let n = 0; try { writeFileSync(file, ''); for (;;) { appendFileSync(file, mb); n++; } } catch (err) { rmSync(file, { force: true }); return { code: err.code, mb: n }; } };
export default async () => ({ tmp: fill('/tmp/fill'), root: fill('/var/fill') });`,
  });
  const r = await s.invoke('filler');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.tmp.code, 'ENOSPC', JSON.stringify(r.json));
  assert.ok(r.json.tmp.mb <= 64, `/tmp stopped at its quota: ${r.json.tmp.mb} MB`);
  // The function's uid owns nothing in the image: the root filesystem is not its to fill.
  assert.equal(r.json.root.code, 'EACCES', JSON.stringify(r.json));
  // The same warm container serves again: the filler cleaned up, and nothing spilled onto the host.
  const again = await s.invoke('filler');
  assert.equal(again.status, 200, again.text);
  assert.equal(again.headers.get('x-cold-start'), 'warm');
  await stillServes();
});

test('a CPU spinner is held to its quota', async () => {
  // 128 MB gives 0.072 cores (Lambda's proportion); 400 ms of wall time allows ~29 ms of
  // CPU (plus one saved-up burst of 7.2 ms).
  await s.deploy('spinner', { runtime: 'nodejs20', timeoutMs: 5000, code: 'export default async () => { const end = Date.now() + 400; let x = 0; while (Date.now() < end) x++; return x > 0; }' });
  // CPU and count of the calls observed so far (metrics are recorded just after the reply).
  const observed = async (calls: number) => {
    let cpu = 0;
    await eventually(async () => {
      const text = (await s.get('/metrics')).text;
      const count = [...text.matchAll(/^faasbox_worker_invocations_total\{[^}]*function="spinner"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
      cpu = Number(/^faasbox_function_cpu_seconds_total\{function="spinner"\} ([\d.e-]+)/m.exec(text)?.[1] ?? 0);
      return count >= calls;
    }, 30_000, `${calls} spinner calls in the metrics`);
    return cpu;
  };
  // The first call pays for boot or specialisation: its CPU grows with its wall time (in a
  // TCG VM, 0.47 s for both calls), so only the second call's share is judged.
  await s.invoke('spinner');
  const before = await observed(1);
  const r = await s.invoke('spinner');
  assert.equal(r.status, 200, r.text);
  const cpu = (await observed(2)) - before;
  // Held to 0.072 cores over the invocation's own wall time (Server-Timing exec), plus one
  // burst of 7.2 ms and some slack for the kernel's accounting: on the host ~0.03 s of a
  // ~0.4 s call; in a TCG VM the call's other work stretches it to ~1.6 s, which the quota
  // then allows ~0.12 s of. Unthrottled, the spin alone would take 0.4 s of CPU.
  const execS = Number(/exec;dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')?.[1]) / 1000;
  assert.ok(execS >= 0.4, `exec ${execS} s`);
  const allowed = 0.072 * execS * 1.25 + 0.0072 + 0.01;
  assert.ok(cpu > 0 && cpu < allowed && cpu < 0.4, `CPU used by the second call: ${cpu} s in ${execS} s of exec (allowed ${allowed.toFixed(3)} s)`);
});

test('escape attempts are refused: no mount, no raw socket, no host processes, no capabilities', async () => {
  await s.deploy('escape', {
    runtime: 'nodejs20',
    code: `import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
const tryRun = (args) => { try { execFileSync(args[0], args.slice(1), { stdio: 'pipe' }); return 'allowed'; } catch (e) { return 'refused'; } };
export default async () => ({
  mount: tryRun(['/bin/mount', '-t', 'tmpfs', 'x', '/tmp']),
  ping: tryRun(['/bin/ping', '-c', '1', '127.0.0.1']),
  pids: readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).length,
  capEff: /CapEff:\\s+(\\w+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1],
  noNewPrivs: /NoNewPrivs:\\s+(\\d)/.exec(readFileSync('/proc/self/status', 'utf8'))[1],
  seccomp: /Seccomp:\\s+(\\d)/.exec(readFileSync('/proc/self/status', 'utf8'))[1],
});`,
  });
  const r = await s.invoke('escape');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.mount, 'refused');
  assert.equal(r.json.ping, 'refused');
  assert.ok(r.json.pids < 10, `only the container's own processes are visible: ${r.json.pids}`);
  assert.equal(r.json.capEff, '0000000000000000');
  assert.equal(r.json.noNewPrivs, '1');
  assert.equal(r.json.seccomp, '2');
  await stillServes();
});

test('a module whose top level never finishes loading times out; its container is killed', async () => {
  // Both ways a top level can hang: a busy loop, and an await that never settles. The
  // load gets max(timeoutMs, 10 s), as Lambda's init phase does, so both run at once.
  const hangs = { spin: 'while (true) {}\nexport default async () => 1;', stall: 'await new Promise(() => {});\nexport default async () => 1;' };
  for (const [name, code] of Object.entries(hangs)) await s.deploy(`hang-${name}`, { runtime: 'nodejs20', timeoutMs: 400, code });
  const t = Date.now();
  await Promise.all(
    Object.keys(hangs).map(async (name) => {
      const r = await s.invoke(`hang-${name}`);
      assert.equal(r.status, 504, r.text);
      assert.equal(r.json.error.code, 'TIMEOUT');
      assert.match(r.json.error.message, /did not finish loading within 10000 ms/);
      await eventually(() => !s.worker.pool.slots().some((x) => x.fn?.startsWith(`hang-${name}@`)), 5000, 'the hung container to go');
    }),
  );
  assert.ok(Date.now() - t < 16_000, `answered after ${Date.now() - t} ms`);
  await stillServes();
});

test('a module that takes longer to load than its function timeout still loads, and then runs warm', async () => {
  // Lambda's init phase is not bounded by the function's timeout: 1.5 s of top level with
  // a 500 ms timeout is fine, and only the run itself has to fit in the 500 ms.
  // A whole core, so that the 500 ms judge only the run: at 128 MB's default 0.072 cores,
  // the first run's compilation alone took longer than that in a TCG VM (6.12).
  await s.deploy('slow-init', { runtime: 'nodejs20', timeoutMs: 500, cpu: 1000, code: 'await new Promise((r) => setTimeout(r, 1500));\nexport default async () => "ready";' });
  const first = await s.invoke('slow-init');
  assert.equal(first.status, 200, first.text);
  assert.equal(first.json, 'ready');
  const second = await s.invoke('slow-init');
  assert.equal(second.headers.get('x-cold-start'), 'warm');
});

test('a module that fails to load reports its error and what it printed; the container is discarded', async () => {
  // One attempt: by default a failed async invocation is tried again after a minute.
  await s.deploy('badload', { runtime: 'nodejs20', code: 'console.error("about to fail");\nthrow new RangeError("no config");\nexport default async () => 1;', async: { maxAttempts: 1 } });
  const r = await s.invoke('badload', {}, { query: '?async=true' });
  assert.equal(r.status, 202, r.text);
  const id = r.json.invocationId as string;
  const rec = (await s.finished(`/v1/invocations/${id}`, 10_000, 'the invocation to fail')) as { status: string; error?: { code: string; message: string }; stderr?: string };
  assert.equal(rec.status, 'dead-lettered');
  assert.equal(rec.error?.code, 'FUNCTION_ERROR');
  assert.match(rec.error!.message, /no config/);
  assert.match(rec.stderr ?? '', /about to fail/);
  await eventually(() => !s.worker.pool.slots().some((x) => x.fn?.startsWith('badload@')), 5000, 'the container to go');
  await stillServes();
});

test('a function writing forged replies on the runtime\'s reply fd does not change its answer', async () => {
  // fd 4 is the shim's reply channel, and function code can write to it: a line for another
  // invocation id, or a reply of the wrong type, is dropped, and the real result is returned.
  const code = `import { writeSync } from 'node:fs';
export default async () => {
  writeSync(4, JSON.stringify({ type: 'result', id: 'someone-else', ok: true, value: 'forged' }) + '\\n');
  writeSync(4, JSON.stringify({ type: 'loaded', ms: 0 }) + '\\n');
  return 'real';
};`;
  await s.deploy('forger', { runtime: 'nodejs20', code });
  for (let i = 0; i < 2; i++) {
    const r = await s.invoke('forger');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json, 'real');
  }
  await stillServes();
});
