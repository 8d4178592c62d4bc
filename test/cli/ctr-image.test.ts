/**
 * `faasbox ctr run --image REF`: a container whose rootfs is a stored image's layer stack,
 * with the image's config (Entrypoint, Cmd, Env, WorkingDir, User from the image's own
 * /etc/passwd) as its defaults, and clear errors for what is not in the store.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../../images/build.js';
import { mountsUnder } from '../../worker/engine/mounts.js';
import { detectCgroupDriver } from '../../worker/engine/cgroups/index.js';
import { tagsPath } from '../../worker/engine/image/refs.js';
import { tar } from '../support/archives.js';
import { TestStore } from '../support/image-store.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/faasbox.js');
const cgroupRoot = `/faasbox-test-ctr-image-${process.pid}`;
const store = new TestStore('faasbox-ctr-image-');
let digest = '';

function faasbox(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FAASBOX_STATE_DIR: store.stateDir, FAASBOX_CGROUP_ROOT: cgroupRoot },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  const busybox = (await buildImage('busybox', path.join(store.root, 'built'))).dir;
  const base = store.layer(execFileSync('tar', ['--format=pax', '-cf', '-', '-C', busybox, '.'], { maxBuffer: 1 << 28 }));
  const top = store.layer(
    tar([
      { name: 'etc/', type: '5', mode: 0o755 },
      { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/app:/bin/sh\n' },
      { name: 'etc/group', data: 'root:x:0:\napp:x:1001:\nextra:x:77:app\n' },
      { name: 'app/', type: '5', mode: 0o755, uid: 1000, gid: 1001 },
      { name: 'app/hello', data: 'from the image\n' },
    ]),
    'zstd',
  );
  const record = store.record([base, top], {
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: ['echo default-cmd'],
    Env: ['PATH=/bin:/usr/bin', 'GREETING=image'],
    WorkingDir: '/app',
    User: 'app',
    StopSignal: 'SIGINT',
  });
  digest = record.manifestDigest;
  writeFileSync(tagsPath(store.imagesDir), JSON.stringify({ 'test/app:1': digest }));
});

after(() => {
  const gc = faasbox(['ctr', 'gc', '--all', '--json']);
  assert.equal(gc.code, 0, gc.stderr);
  detectCgroupDriver({ root: cgroupRoot }).removeRoot();
  assert.deepEqual(mountsUnder(store.root), []);
  store.remove();
});

test('the image\'s Cmd, Env, WorkingDir and User are the defaults', () => {
  const r = faasbox(['ctr', 'run', '--image', 'test/app:1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'default-cmd\n');
  const s = faasbox(['ctr', 'run', '--image', 'test/app:1', '--', 'echo "$(id -u):$(id -g):$(id -G) $PWD $GREETING"; cat hello']);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stdout, '1000:1001:1001 77 /app image\nfrom the image\n');
});

test('CMD, --env, --user and --cwd override; a pinned digest names the same image', () => {
  const r = faasbox(['ctr', 'run', '--image', `test/app@${digest}`, '--env', 'GREETING=cli', '--user', '0:0', '--cwd', '/', '--', 'echo "$(id -u) $PWD $GREETING"']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '0 / cli\n');
  const bad = faasbox(['ctr', 'run', '--image', 'test/app:1', '--cwd', '/proc/self/fd/3', '--', 'true']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /CVE-2024-21626.*\[IMAGE_INVALID\]/);
});

test('an image not in the store: "not pulled", IMAGE_NOT_FOUND, exit 1; usage errors exit 2', () => {
  const r = faasbox(['ctr', 'run', '--image', 'test/missing:2', '--', 'true']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not pulled.*\[IMAGE_NOT_FOUND\]/);
  const both = faasbox(['ctr', 'run', '--image', 'test/app:1', '--rootfs', '/', '--', 'true']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--image or --rootfs/);
  assert.equal(faasbox(['ctr', 'run', '--help']).stdout.includes('--image REF'), true);
});
