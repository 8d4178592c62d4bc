/**
 * Large payloads, both ways. A function's answer is bounded: a result past the limit
 * (6 MiB) is answered RESULT_TOO_LARGE at once, its container is killed rather than
 * pooled, the worker's other functions keep being served meanwhile, and the worker's
 * memory does not grow with what a function writes on its reply channel. A large event
 * reaches a small function without several copies of it in the container. Real stack:
 * gateway, Redis, worker, containers of both runtimes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type TestStack } from '../support/stack.js';

const MB = 1024 * 1024;

let s: TestStack;
before(async () => {
  s = await startStack('results');
  const ping = await s.deploy('ping', { runtime: 'nodejs20', code: 'export default async () => 1' });
  assert.equal(ping.status, 201, ping.text);
  // Asked for `mb` megabytes, it answers with a string that long; otherwise a small value.
  const big = await s.deploy('big', {
    runtime: 'nodejs20',
    memoryMb: 1024,
    code: 'export default async (e) => (e && e.mb ? "x".repeat(e.mb * 1048576) : { small: true })',
  });
  assert.equal(big.status, 201, big.text);
});
after(async () => {
  await s.close();
});

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)] ?? NaN;
}

/** Sequential pings until stop() is called; their latencies. */
function pingLoad(): { stop: () => Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      const r = await s.invoke('ping', {});
      assert.equal(r.status, 200, r.text);
      times.push(performance.now() - t);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return times;
    },
  };
}

test('a 30 MB result is answered RESULT_TOO_LARGE at once while the worker keeps serving another function; the next call gets a fresh container', async (t) => {
  // Warm both up, then a baseline of the small function alone.
  assert.equal((await s.invoke('ping', {})).status, 200);
  const first = await s.invoke('big', {});
  assert.equal(first.status, 200, first.text);
  assert.deepEqual(first.json, { small: true });
  const warm = await s.invoke('big', {});
  assert.equal(warm.headers.get('x-cold-start'), 'warm');
  const base = pingLoad();
  await new Promise((r) => setTimeout(r, 2000));
  const baseline = await base.stop();

  const load = pingLoad();
  const answered: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = await s.invoke('big', { mb: 30 });
    answered.push(performance.now() - t0);
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json?.error?.code, 'RESULT_TOO_LARGE', r.text);
    assert.match(r.json.error.message, /larger than the limit of 6291456 bytes/);
    // Its container was killed, not pooled: the next call is not warm, and works.
    const next = await s.invoke('big', {});
    assert.equal(next.status, 200, next.text);
    assert.deepEqual(next.json, { small: true });
    assert.notEqual(next.headers.get('x-cold-start'), 'warm', 'the container that answered too much must not be reused');
  }
  const during = await load.stop();
  t.diagnostic(`30 MB result answered in ${answered.map((x) => x.toFixed(0)).join(', ')} ms`);
  t.diagnostic(`ping p50 alone ${median(baseline).toFixed(2)} ms (n=${baseline.length}), during the large results ${median(during).toFixed(2)} ms (n=${during.length})`);
  // Generous bound only (a shared 2-core machine): the limit is acted on when crossed.
  for (const ms of answered) assert.ok(ms < 5000, `RESULT_TOO_LARGE took ${ms} ms`);
  assert.ok(during.length > 0, 'the other function was served while the large results were handled');
});

test('a Python function returning 30 MB is answered RESULT_TOO_LARGE too', async () => {
  const d = await s.deploy('pybig', { runtime: 'python3', memoryMb: 512, code: "def handler(event, context):\n    return 'x' * (event.get('mb', 0) * 1048576) if event else {'small': True}\n" });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('pybig', { mb: 30 });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json?.error?.code, 'RESULT_TOO_LARGE', r.text);
  const next = await s.invoke('pybig', {});
  assert.equal(next.status, 200, next.text);
  assert.notEqual(next.headers.get('x-cold-start'), 'warm');
});

test('a runtime writing 100 MB without a newline on its reply fd is killed, and the worker does not hold what it wrote', async (t) => {
  // Writes straight to fd 4 (the runtime's reply channel), past the shim. The fd is
  // non-blocking (the shim's socket), so EAGAIN is waited out.
  const d = await s.deploy('flood', {
    runtime: 'nodejs20',
    memoryMb: 256,
    code: `import fs from 'node:fs';
export default async (e) => {
  if (!e || !e.flood) return 'calm';
  const chunk = Buffer.alloc(1 << 20, 0x61);
  let left = 100 * chunk.length;
  while (left > 0) {
    try { left -= fs.writeSync(4, chunk, 0, Math.min(chunk.length, left)); }
    catch (err) { if (err.code !== 'EAGAIN') throw err; await new Promise((r) => setTimeout(r, 1)); }
  }
  return 'wrote it all';
};`,
  });
  assert.equal(d.status, 201, d.text);
  assert.equal((await s.invoke('flood', {})).json, 'calm');
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
  const t0 = performance.now();
  let r;
  try {
    r = await s.invoke('flood', { flood: true });
  } finally {
    clearInterval(sampler);
  }
  const ms = performance.now() - t0;
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  t.diagnostic(`answered in ${ms.toFixed(0)} ms; worker RSS ${(rssBefore / MB).toFixed(1)} -> peak ${(rssPeak / MB).toFixed(1)} MB`);
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json?.error?.code, 'RESULT_TOO_LARGE', r.text);
  assert.ok(ms < 5000, `answered in ${ms} ms`);
  assert.ok(rssPeak - rssBefore < 64 * MB, `the worker grew by ${((rssPeak - rssBefore) / MB).toFixed(1)} MB`);
  const next = await s.invoke('flood', {});
  assert.equal(next.status, 200, next.text);
  assert.equal(next.json, 'calm');
  assert.notEqual(next.headers.get('x-cold-start'), 'warm');
});

/** The latest invocation's cgroup memory peak of a function, from the worker's metrics (observed just after the reply). */
async function memoryPeakMb(fn: string): Promise<number> {
  await new Promise((r) => setTimeout(r, 50));
  const m = await s.worker.metrics.getSingleMetric('faasbox_function_memory_peak_bytes')!.get();
  return (m.values.find((v) => v.labels.function === fn)?.value ?? NaN) / MB;
}

test('10 invocations with a 5 MB event each on a 128 MB no-op function all succeed (Node.js and Python; one string, many objects)', async (t) => {
  assert.equal((await s.deploy('noop', { runtime: 'nodejs20', memoryMb: 128, code: 'export default async () => null' })).status, 201);
  assert.equal((await s.deploy('pynoop', { runtime: 'python3', memoryMb: 128, code: 'def handler(event, context):\n    return None\n' })).status, 201);
  const events = {
    string: { data: 'x'.repeat(5 * 1000 * 1000) },
    objects: { items: Array.from({ length: 80_000 }, (_, i) => ({ id: i, name: `item-${i}`, ok: true, tags: ["a", "b"] })) },
  };
  for (const fn of ['noop', 'pynoop']) {
    for (const [what, event] of Object.entries(events)) {
      const peaks: string[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await s.invoke(fn, event);
        peaks.push((await memoryPeakMb(fn)).toFixed(1));
        assert.equal(r.status, 200, `${fn}, ${what} event, call ${i + 1}: ${r.text} (memory peaks so far: ${peaks.join(', ')} MB)`);
        assert.equal(r.json, null);
      }
      t.diagnostic(`${fn}, ${(JSON.stringify(event).length / 1e6).toFixed(1)} MB event of ${what}: memory peak per call ${peaks.join(', ')} MB`);
    }
  }
});
