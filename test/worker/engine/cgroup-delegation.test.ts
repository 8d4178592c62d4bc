/**
 * cgroup v2 delegation on the real kernel: a worker started inside the cgroup it is given
 * (a systemd unit with Delegate=yes, say) cannot enable controllers for children there
 * while it is a member (the no-internal-processes rule). The driver moves the worker to
 * a leaf first. Needs a cgroup-v2-only host (the VM pass of scripts/test.sh); on a v1 or
 * hybrid host it is skipped, saying so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cgroupVersionAt, detectCgroupDriver, WORKER_LEAF } from '../../../worker/engine/cgroups/index.js';

const MOUNT = '/sys/fs/cgroup';
const pureV2 = existsSync(MOUNT) && cgroupVersionAt(MOUNT) === 2;
const ownCgroup = () => /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];

test('a worker inside the cgroup it was given moves to a leaf; containers then get limits there', { skip: pureV2 ? false : 'not a cgroup-v2-only host (runs in the VM pass)' }, async () => {
  const origin = ownCgroup()!;
  const name = `faasbox-test-delegated-${randomBytes(4).toString('hex')}`;
  const unit = `${MOUNT}/${name}`;
  mkdirSync(unit);
  try {
    // As systemd would start it: the worker is a member of its delegated cgroup.
    writeFileSync(`${unit}/cgroup.procs`, String(process.pid));
    assert.equal(ownCgroup(), `/${name}`);
    const driver = detectCgroupDriver({ root: `/${name}` });
    const cg = driver.create('c1', { memoryBytes: 48 * 1024 * 1024, pids: 12 });
    try {
      assert.equal(ownCgroup(), `/${name}/${WORKER_LEAF}`, 'the worker moved to its leaf');
      assert.match(readFileSync(`${unit}/cgroup.subtree_control`, 'utf8'), /memory.*pids|pids.*memory/);
      assert.equal(readFileSync(`${unit}/c1/memory.max`, 'utf8').trim(), String(48 * 1024 * 1024));
      assert.equal(readFileSync(`${unit}/c1/pids.max`, 'utf8').trim(), '12');
      assert.deepEqual(driver.list(), ['c1'], 'gc never sees the worker leaf');
      // A process in the container cgroup is held by its limits.
      const sh = spawn('/bin/sh', ['-c', `echo $$ > ${unit}/c1/cgroup.procs && exec sleep 30`], { stdio: 'ignore' });
      const exit = once(sh, 'exit');
      for (let i = 0; i < 500 && !readFileSync(`${unit}/c1/cgroup.procs`, 'utf8').trim(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(readFileSync(`${unit}/c1/cgroup.procs`, 'utf8').trim(), String(sh.pid));
      await cg.kill();
      assert.deepEqual(await exit, [null, 'SIGKILL']);
    } finally {
      await cg.destroy();
    }
  } finally {
    writeFileSync(`${MOUNT}${origin === '/' ? '' : origin}/cgroup.procs`, String(process.pid));
    for (const d of [`${unit}/${WORKER_LEAF}`, unit]) if (existsSync(d)) rmdirSync(d);
  }
  assert.equal(ownCgroup(), origin);
  assert.ok(!existsSync(unit), 'nothing left');
});
