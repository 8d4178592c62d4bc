/**
 * A function's deployed pidsLimit and diskMb are its container's: pids.max of its cgroup
 * and the size of the tmpfs under its writable layer, whether the container was booted
 * for it (cold) or was a stem cell specialised for it (Container.updateLimits).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';
import { containerPaths } from '../../worker/engine/config.js';

let s: TestStack;
before(async () => {
  s = await startStack('limits', { sizing: { minStems: 1 } });
  await eventually(() => s.worker.pool.slots().some((x) => x.kind === 'stem' && x.runtime === 'nodejs20' && x.state === 'idle'), 30_000, 'a nodejs20 stem cell');
});
after(async () => {
  await s.close();
});

/** Forks shells until a fork fails: the count that started, and the failure's code. */
const FORKER = `import { spawn } from 'node:child_process';
export default async () => {
  const kids = [];
  let failed = null;
  for (let i = 0; i < 64 && !failed; i++) {
    const c = spawn('/bin/sh', ['-c', 'read x'], { stdio: ['pipe', 'ignore', 'ignore'] });
    failed = await new Promise((r) => { c.once('spawn', () => r(null)); c.once('error', (e) => r(e.code)); });
    if (!failed) kids.push(c);
  }
  for (const c of kids) c.kill('SIGKILL');
  return { started: kids.length, failed };
};`;

function pidsMax(containerId: string): string {
  const cg = s.worker.engine.cgroups.open(containerId);
  assert.ok(cg, `a cgroup for ${containerId}`);
  const file = cg.procsFiles.map((p) => path.join(path.dirname(p), 'pids.max')).find((f) => existsSync(f));
  assert.ok(file, `pids.max beside one of ${cg.procsFiles.join(', ')}`);
  return readFileSync(file, 'utf8').trim();
}

function diskBytes(containerId: string): number {
  const st = statfsSync(containerPaths(s.worker.engine.stateDir, containerId).disk);
  return st.blocks * st.bsize;
}

for (const [how, memoryMb, startKind] of [
  ['a specialised stem cell', 128, 'specialized'],
  ['a cold boot', 192, 'cold'],
] as const) {
  test(`deployed pidsLimit and diskMb are the container's limits, on ${how}`, async () => {
    const name = `lim-${startKind}`;
    const d = await s.deploy(name, { runtime: 'nodejs20', code: FORKER, memoryMb, pidsLimit: 24, diskMb: 20 });
    assert.equal(d.status, 201, d.text);
    const r = await s.invoke(name);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-cold-start'), startKind);
    assert.equal(r.json.failed, 'EAGAIN', `a fork past the limit fails: ${JSON.stringify(r.json)}`);
    assert.ok(r.json.started > 0 && r.json.started < 24, `some forks ran, fewer than the limit: ${JSON.stringify(r.json)}`);
    const slot = s.worker.pool.slots().find((x) => x.fn?.startsWith(`${name}@`));
    assert.ok(slot, 'the function keeps its warm container');
    assert.equal(pidsMax(slot.id), '24');
    assert.equal(diskBytes(slot.id), 20 * 1024 * 1024);
  });
}

test('a function that deploys neither gets the defaults (64 pids, 64 MB)', async () => {
  const d = await s.deploy('lim-default', { runtime: 'nodejs20', code: 'export default async () => 1' });
  assert.equal(d.status, 201, d.text);
  const r = await s.invoke('lim-default');
  assert.equal(r.status, 200, r.text);
  const slot = s.worker.pool.slots().find((x) => x.fn?.startsWith('lim-default@'));
  assert.ok(slot);
  assert.equal(pidsMax(slot.id), '64');
  assert.equal(diskBytes(slot.id), 64 * 1024 * 1024);
});
