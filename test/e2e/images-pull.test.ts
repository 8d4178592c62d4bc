/**
 * A real pull end to end (worker/engine/image/pull.ts, with test/support/registry.ts): an image
 * made by umoci and pushed by skopeo to a docker-registry on 127.0.0.1 is pulled onto the
 * worker by POST /v1/images, listed by GET /v1/images and `faasbox image ls`, run by
 * `faasbox ctr run --image REF --pull` from an empty store, and removed by `image rm` and
 * `prune`; a repository the registry lacks is 404 IMAGE_NOT_FOUND.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../../images/build.js';
import { detectCgroupDriver } from '../../worker/engine/cgroups/index.js';
import { mountsUnder } from '../../worker/engine/mounts.js';
import { OciLayout, registrySkip, skopeoPush, startRegistry } from '../support/registry.js';
import { startStack, STACK_KEY, type TestStack } from '../support/stack.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const bin = path.join(repo, 'bin/faasbox.js');

const skip = registrySkip();

function faasbox(args: string[], stateDir: string, cgroupRoot?: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, FAASBOX_STATE_DIR: stateDir, ...(cgroupRoot ? { FAASBOX_CGROUP_ROOT: cgroupRoot } : {}) } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a real pull through the gateway and the CLI', { skip }, () => {
  let s: TestStack;
  let reg: { host: string; stop(): Promise<void> };
  let ref = '';
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-e2e-pull-'));
  const cgroupRoot = `/faasbox-test-images-pull-${process.pid}`;
  const cliState = path.join(work, 'cli-state');

  before(async () => {
    const busybox = (await buildImage('busybox', path.join(work, 'built'))).dir;
    const oci = new OciLayout(path.join(work, 'oci'));
    mkdirSync(path.join(work, 'files'));
    writeFileSync(path.join(work, 'files', 'hello'), 'pulled from the registry\n');
    oci.umoci('new', '--image', oci.image('1'));
    oci.umoci('insert', '--image', oci.image('1'), busybox, '/');
    oci.umoci('insert', '--image', oci.image('1'), path.join(work, 'files', 'hello'), '/hello');
    oci.umoci('config', '--image', oci.image('1'), '--os', 'linux', '--architecture', process.arch === 'x64' ? 'amd64' : process.arch, '--config.cmd', '/bin/cat', '--config.cmd', '/hello');
    reg = await startRegistry();
    ref = `${reg.host}/e2e/app:1`;
    await skopeoPush(oci.image('1'), ref);
    s = await startStack('images-pull', { pools: false });
  });
  after(async () => {
    await s?.close();
    faasbox(['ctr', 'gc', '--all'], cliState, cgroupRoot);
    if (existsSync(cliState)) detectCgroupDriver({ root: cgroupRoot }).removeRoot();
    await reg?.stop();
    const left = mountsUnder(work);
    rmSync(work, { recursive: true, force: true });
    assert.deepEqual(left, []);
  });

  const post = async (body: unknown) => {
    const r = await fetch(`${s.url}/v1/images`, { method: 'POST', headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };

  test('POST /v1/images pulls onto the worker and answers the digest; GET and image ls list it', async () => {
    const r = await post({ ref });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.match(r.json.digest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(r.json.workers, [{ id: s.worker.id, ok: true }]);
    const list = await s.get('/v1/images');
    const img = (list.json.images as { digest: string; tags: string[]; workers: string[] }[]).find((i) => i.digest === r.json.digest);
    assert.ok(img, list.text);
    assert.ok(img.tags.some((t) => t.endsWith('e2e/app:1')), img.tags.join());
    assert.deepEqual(img.workers, [s.worker.id]);
    const ls = faasbox(['image', 'ls', '--json'], s.worker.engine.stateDir);
    assert.equal(ls.code, 0, ls.stderr);
    assert.ok((JSON.parse(ls.stdout) as { digest: string }[]).some((i) => i.digest === r.json.digest));
  });

  test('a repository the registry does not have: 404 IMAGE_NOT_FOUND', async () => {
    const r = await post({ ref: `${reg.host}/e2e/missing:1` });
    assert.equal(r.status, 404, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'IMAGE_NOT_FOUND');
  });

  test('ctr run --image REF --pull from an empty store runs the image; rm and prune then empty the store', () => {
    const run = faasbox(['ctr', 'run', '--image', ref, '--pull'], cliState, cgroupRoot);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'pulled from the registry\n');
    const rm = faasbox(['image', 'rm', ref, '--json'], cliState);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((JSON.parse(rm.stdout) as { removed: boolean }).removed, true);
    const prune = faasbox(['image', 'prune', '--json'], cliState);
    assert.equal(prune.code, 0, prune.stderr);
    const ls = faasbox(['image', 'ls', '--json'], cliState);
    assert.deepEqual(JSON.parse(ls.stdout), []);
  });
});
