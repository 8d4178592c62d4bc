/**
 * A standalone worker (`faasbox worker`) answers Kubernetes' probes beside its /metrics:
 * /healthz (alive, Redis reachable) and /readyz (its first stem cells booted, its queues
 * consumed), neither behind the metrics token. A real worker process on a real Redis.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { detectCgroupDriver } from '../../worker/engine/cgroups/index.js';
import { mountsUnder } from '../../worker/engine/mounts.js';
import { startRedis } from '../support/redis.js';
import { eventually } from '../support/eventually.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/faasbox.js');

test('faasbox worker: /healthz and /readyz without a token, /readyz 200 once its stem cells booted, /healthz 503 while Redis does not answer', { timeout: 240_000 }, async () => {
  const redis = await startRedis();
  const state = mkdtempSync(path.join(tmpdir(), 'faasbox-probes-'));
  const cgroupRoot = `/faasbox-test-probes-${process.pid}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    FAASBOX_REDIS_URL: redis.url,
    FAASBOX_PREFIX: `probes${process.pid}`,
    FAASBOX_STATE_DIR: state,
    FAASBOX_CGROUP_ROOT: cgroupRoot,
    FAASBOX_HOST: '127.0.0.1',
    FAASBOX_WORKER_METRICS_PORT: '0',
    FAASBOX_WORKER_MEMORY_MB: '512',
    FAASBOX_METRICS_TOKEN: 'probes-metrics-token-0123456789',
  };
  for (const name of ['FAASBOX_API_KEY', 'FAASBOX_METRICS_PUBLIC', 'FAASBOX_CONFIG', 'FAASBOX_POOLS']) delete env[name];
  const worker = spawn(process.execPath, [bin, 'worker'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  worker.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
  const admin = new Redis(redis.url);
  try {
    let url = '';
    await eventually(() => {
      const m = /metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr);
      if (m) url = m[1]!;
      return m !== null || worker.exitCode !== null;
    }, 180_000, 'the worker to serve its metrics');
    assert.ok(url, `the worker did not start: ${stderr}`);

    assert.equal((await fetch(`${url}/metrics`)).status, 401, '/metrics stays behind its token');
    const live = await fetch(`${url}/healthz`);
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { status: 'ok', redis: 'ok' });

    // Not ready until its nodejs20 and python3 stem cells have booted (a few hundred ms each).
    const seen: { status: number; body: { status: string; reason?: string } }[] = [];
    await eventually(async () => {
      const r = await fetch(`${url}/readyz`);
      seen.push({ status: r.status, body: (await r.json()) as { status: string; reason?: string } });
      return r.status === 200;
    }, 120_000, '/readyz to answer 200');
    assert.deepEqual(seen.at(-1)!.body, { status: 'ready' });
    for (const s of seen.slice(0, -1)) {
      assert.equal(s.status, 503);
      assert.match(s.body.reason ?? '', /^starting: no stem cell booted yet for /);
    }

    // Redis paused: PING gets no reply within the probe's bound, and the worker says so.
    await admin.call('CLIENT', 'PAUSE', '4000', 'ALL');
    const down = await fetch(`${url}/healthz`);
    assert.equal(down.status, 503);
    const body = (await down.json()) as { status: string; redis: string };
    assert.equal(body.status, 'unhealthy');
    assert.match(body.redis, /no PING reply within \d+ ms/);
    await eventually(async () => (await fetch(`${url}/healthz`)).status === 200, 20_000, '/healthz back to 200 after the pause');

    worker.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
  } finally {
    if (worker.exitCode === null) {
      worker.kill('SIGKILL');
      await exited;
    }
    await admin.quit().catch(() => {});
    await redis.stop();
    // What the worker made goes with it on SIGTERM; the root cgroup is the test's to remove.
    assert.deepEqual(mountsUnder(state), []);
    const cgroups = detectCgroupDriver({ root: cgroupRoot });
    assert.deepEqual(cgroups.list(), [], 'cgroups left under the root');
    cgroups.removeRoot();
    rmSync(state, { recursive: true, force: true });
  }
});
