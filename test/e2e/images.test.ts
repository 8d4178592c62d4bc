/**
 * /v1/images end to end with a real worker (its store holds the runtime images it imported
 * at start): GET lists them with the worker that has them; POST reaches the worker's
 * puller and answers with its code: UNAVAILABLE in a build without pull.ts, and a failing
 * puller's typed error as its status. (A real pull against a registry comes with pull.ts:
 * its tests run the registry.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryUnauthorizedError } from '../../common/errors.js';
import { loadPuller } from '../../worker/engine/image/puller.js';
import type { PullImage } from '../../worker/engine/image/pull-types.js';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const pullMerged = existsSync(path.join(repo, 'dist/worker/engine/image/pull.js'));

/** What the worker's puller is for the next request: the build's own unless a test sets one. */
let puller: () => Promise<PullImage> = loadPuller;
let s: TestStack;
before(async () => {
  s = await startStack('images', { pools: false, puller: () => puller() });
});
after(async () => {
  await s.close();
});

async function post(body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${s.url}/v1/images`, { method: 'POST', headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

test('GET /v1/images lists the runtime images the worker imported, and which worker has them', async () => {
  const r = await s.get('/v1/images');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.workers, [{ id: s.worker.id, ok: true }]);
  const tags = (r.json.images as { tags: string[]; workers: string[]; digest: string; size: number }[]).flatMap((i) => i.tags.map((t) => [t.split(':')[0], i.workers, /^sha256:[0-9a-f]{64}$/.test(i.digest), i.size > 1e6]));
  assert.deepEqual(tags.sort(), [
    ['faasbox/nodejs20', [s.worker.id], true, true],
    ['faasbox/python3', [s.worker.id], true, true],
  ]);
});

test('POST /v1/images in a build without the puller: 503 UNAVAILABLE saying so, per worker', { skip: pullMerged ? 'pull.ts is merged: a real pull e2e replaces this' : false }, async () => {
  puller = loadPuller;
  const r = await post({ ref: '127.0.0.1:9/none/app:1' });
  assert.equal(r.status, 503, JSON.stringify(r.json));
  assert.equal(r.json.error.code, 'UNAVAILABLE');
  assert.match(r.json.error.message, /not available in this build/);
  assert.deepEqual(r.json.error.details.workers.map((w: { id: string; ok: boolean }) => [w.id, w.ok]), [[s.worker.id, false]]);
});

test('POST /v1/images with a puller the registry refuses: 403 REGISTRY_UNAUTHORIZED from the worker', async () => {
  puller = async () => async () => {
    throw new RegistryUnauthorizedError('127.0.0.1:9', 'HTTP 401 after the token flow');
  };
  try {
    const r = await post({ ref: '127.0.0.1:9/none/app:1', creds: { username: 'u', password: 'p' } });
    assert.equal(r.status, 403, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'REGISTRY_UNAUTHORIZED');
    assert.match(r.json.error.message, /worker .*: registry 127\.0\.0\.1:9 refused the pull/);
  } finally {
    puller = loadPuller;
  }
});
