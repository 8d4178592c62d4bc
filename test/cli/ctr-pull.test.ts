/**
 * `faasbox ctr run --image REF --pull`: a REF the store does not have is pulled from its
 * registry (a real one, the image made by umoci and pushed by skopeo), then run; without
 * --pull the same REF is "not pulled".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { buildImage } from '../../images/build.js';
import { detectCgroupDriver } from '../../worker/engine/cgroups/index.js';
import { mountsUnder } from '../../worker/engine/mounts.js';
import { TestStore } from '../support/image-store.js';
import { OciLayout, registrySkip, skopeoPush, startRegistry, type TestRegistry } from '../support/registry.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/faasbox.js');
const cgroupRoot = `/faasbox-test-ctr-pull-${process.pid}`;
const skip = registrySkip();

describe('ctr run --image REF --pull', { skip }, () => {
  let store: TestStore;
  let reg: TestRegistry;
  const faasbox = (args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, FAASBOX_STATE_DIR: store.stateDir, FAASBOX_CGROUP_ROOT: cgroupRoot, HOME: store.root, DOCKER_CONFIG: path.join(store.root, 'docker') } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  before(async () => {
    store = new TestStore('faasbox-ctr-pull-');
    const busybox = (await buildImage('busybox', path.join(store.root, 'built'))).dir;
    const oci = new OciLayout(path.join(store.root, 'oci'));
    writeFileSync(path.join(store.root, 'hello'), 'pulled and run\n');
    oci.umoci('new', '--image', oci.image('v1'));
    oci.umoci('insert', '--image', oci.image('v1'), busybox, '/');
    oci.umoci('insert', '--image', oci.image('v1'), path.join(store.root, 'hello'), '/hello');
    oci.umoci('config', '--image', oci.image('v1'), '--config.cmd', '/bin/cat', '--config.cmd', '/hello');
    reg = await startRegistry();
    await skopeoPush(oci.image('v1'), `${reg.host}/ctr/pull:v1`);
  });
  after(async () => {
    if (store) {
      const gc = faasbox(['ctr', 'gc', '--all', '--json']);
      assert.equal(gc.code, 0, gc.stderr);
      detectCgroupDriver({ root: cgroupRoot }).removeRoot();
      assert.deepEqual(mountsUnder(store.root), []);
    }
    await reg?.stop();
    store?.remove();
  });

  test('not in the store: "not pulled" without --pull, pulled and run with it', () => {
    const ref = `${reg.host}/ctr/pull:v1`;
    const without = faasbox(['ctr', 'run', '--image', ref]);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /not pulled.*\[IMAGE_NOT_FOUND\]/);
    const r = faasbox(['ctr', 'run', '--image', ref, '--pull']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'pulled and run\n');
    const again = faasbox(['ctr', 'run', '--image', ref, '--', '/bin/sh', '-c', 'echo stored']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'stored\n');
  });
});
