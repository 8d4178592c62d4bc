/**
 * cgroup v2's CLONE_INTO_CGROUP path of the C stage, on the real kernel: the container's
 * init is born inside its cgroup instead of migrating into it. This machine's cgroup2
 * mount (/sys/fs/cgroup/unified) has no controllers, which is enough to check where the
 * process lands; limits under v2 are covered by the fabricated-tree unit tests.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmdirSync, readFileSync, statfsSync, existsSync } from 'node:fs';
import { testEngine, type TestEngine } from '../../support/engine.js';
import { encodeInitConfig } from '../../../worker/engine/config.js';
import { InitProcess } from '../../../worker/engine/process.js';
import { mountRootfs, unmountRootfs } from '../../../worker/engine/rootfs/overlay.js';
import { CGROUP2_SUPER_MAGIC } from '../../../worker/engine/cgroups/index.js';

const V2_MOUNT = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((p) => existsSync(p) && statfsSync(p).type === CGROUP2_SUPER_MAGIC);
const dir = V2_MOUNT ? `${V2_MOUNT}/faasbox-test-clone-into-${process.pid}` : '';
let te: TestEngine;

before(async () => {
  te = await testEngine('clone-into');
  if (V2_MOUNT) mkdirSync(dir);
});
after(async () => {
  if (V2_MOUNT) rmdirSync(dir);
  await te.cleanup();
});

test('the init is cloned straight into its cgroup v2 directory, without a cgroup.procs write', { skip: V2_MOUNT ? false : 'no cgroup2 mount on this machine' }, async () => {
  const cfg = te.engine.config({ rootfs: { layers: te.layers }, process: { args: ['/probe', 'sleep', '10000'] } });
  mkdirSync(cfg.paths.dir, { recursive: true });
  mountRootfs(te.engine.sys, { paths: cfg.paths, lowerDirs: cfg.lowerDirs, diskBytes: cfg.diskBytes, tag: `faasbox-${cfg.id}` });
  try {
    // No cgroup.procs records at all: if the clone did not place it, it stays in ours.
    const p = new InitProcess({ bin: te.engine.initBin, config: encodeInitConfig(cfg, { cgroupProcs: [], cgroupDir: dir, seccomp: null, extraFds: 0 }), stdio: ['ignore', 'ignore', 'ignore'], extraFds: [], zygote: te.engine.zygote });
    await p.ready();
    const relative = dir.slice(V2_MOUNT!.length);
    assert.match(readFileSync(`/proc/${p.pid}/cgroup`, 'utf8'), new RegExp(`^0::${relative}$`, 'm'));
    assert.ok(readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').includes(String(p.pid)));
    p.start();
    p.signal('SIGKILL');
    const ex = await p.exited;
    assert.ok(ex.signal === 9 || ex.initKilled, JSON.stringify(ex));
  } finally {
    unmountRootfs(te.engine.sys, cfg.paths);
  }
});
