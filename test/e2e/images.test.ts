/**
 * /v1/images end to end with a real worker (its store holds the runtime images it imported
 * at start): GET lists them with the worker that has them; POST reaches the worker's
 * puller and answers with a failing puller's typed error as its status. (A real pull
 * against a registry end to end: e2e/images-pull.test.ts.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryUnauthorizedError } from '../../common/errors.js';
import { loadPuller } from '../../worker/engine/image/puller.js';
import type { PullImage } from '../../worker/engine/image/pull-types.js';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';


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
