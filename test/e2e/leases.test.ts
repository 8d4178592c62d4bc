/**
 * A container's lease is given back on every path: a function deleted while its
 * invocation waits for a cold boot must not leave that container busy for the life of
 * the worker (the version used to be looked up again after the boot, and the lookup threw
 * with the lease held).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type TestStack } from '../support/stack.js';
import { eventually } from '../support/eventually.js';

let s: TestStack;
before(async () => {
  // No pools: every invocation boots its container, which leaves a window to delete in.
  s = await startStack('leases', { pools: false });
});
after(async () => {
  await s.close();
});

test('a function deleted while its invocation boots a container is answered FUNCTION_NOT_FOUND and leaves no busy container behind', async () => {
  assert.equal((await s.deploy('gone-soon', { runtime: 'nodejs20', code: 'export default async () => 1;' })).status, 201);
  const call = s.invoke('gone-soon');
  // The worker has taken the job and is booting the container for it.
  await eventually(() => s.worker.pool.slots().some((x) => x.fn?.startsWith('gone-soon@') && x.id.startsWith('pending-')), 10_000, 'a container booting for the call');
  assert.equal((await s.del('/v1/functions/gone-soon')).status, 200);
  const r = await call;
  // The function is gone: its caller learns that, not an internal failure.
  assert.equal(r.json?.error?.code, 'FUNCTION_NOT_FOUND', r.text);
  assert.equal(r.status, 404, r.text);
  await eventually(() => !s.worker.pool.slots().some((x) => x.fn?.startsWith('gone-soon@')), 10_000, "the deleted function's container to go");
});
