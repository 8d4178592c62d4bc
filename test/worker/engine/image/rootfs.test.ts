/**
 * An image's config resolved against its own layer stack (read-only OverlayFS for the
 * look, confined resolution): User from the image's /etc/passwd as the stack presents it,
 * never the host's, even through a symlink; a WorkingDir symlinked into /proc refused; a
 * config blob that is not its digest refused; no mount left behind.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { FaasboxError } from '../../../../common/errors.js';
import { blobPath } from '../../../../worker/engine/image/paths.js';
import { prepareImage } from '../../../../worker/engine/image/rootfs.js';
import { mountsUnder } from '../../../../worker/engine/mounts.js';
import { linuxSys } from '../../../../worker/engine/sys/index.js';
import { tar, type TarMember } from '../../../support/archives.js';
import { TestStore } from '../../../support/image-store.js';

const store = new TestStore('faasbox-rootfs-');
after(() => {
  assert.deepEqual(mountsUnder(store.root), []);
  store.remove();
});

const PASSWD = 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n';

async function prepared(layers: TarMember[][], config: object) {
  const record = store.record(layers.map((m) => store.layer(tar(m))), config);
  return prepareImage(await linuxSys(), store.imagesDir, record);
}

async function refusal(layers: TarMember[][], config: object): Promise<FaasboxError> {
  const err = await prepared(layers, config).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof FaasboxError, String(err));
  return err;
}

test('User resolves through the layer stack: the top layer\'s passwd wins, a whiteout removes it', async () => {
  const bottom = [{ name: 'etc/passwd', data: PASSWD }, { name: 'app/', type: '5', mode: 0o755 }];
  const p = await prepared([bottom, [{ name: 'etc/passwd', data: 'app:x:1234:99::/:/bin/sh\n' }]], { User: 'app', Cmd: ['x'], WorkingDir: '/app' });
  assert.deepEqual([p.process.uid, p.process.gid, p.process.cwd], [1234, 99, '/app']);
  const err = await refusal([bottom, [{ name: 'etc/.wh.passwd', data: '' }]], { User: 'app', Cmd: ['x'] });
  assert.match(err.message, /not in the image's \/etc\/passwd/);
});

test('an image\'s /etc/passwd symlinked to a host file reads inside the image, never the host\'s', async () => {
  const hostFile = path.join(store.root, 'host-passwd');
  writeFileSync(hostFile, 'hostonly:x:4321:4321::/:/bin/sh\n');
  for (const linkname of [hostFile, `../../../../../../../..${hostFile}`]) {
    const err = await refusal([[{ name: 'etc/', type: '5', mode: 0o755 }, { name: 'etc/passwd', type: '2', linkname }]], { User: 'hostonly', Cmd: ['x'] });
    assert.equal(err.code, 'IMAGE_INVALID');
    assert.match(err.message, /"hostonly", who is not in the image's \/etc\/passwd/);
  }
});

test('a WorkingDir that is a symlink into /proc is refused (CVE-2024-21626)', async () => {
  const err = await refusal([[{ name: 'work', type: '2', linkname: '/proc/self/fd/7' }], [{ name: 'x', data: '' }]], { Cmd: ['x'], WorkingDir: '/work' });
  assert.equal(err.code, 'IMAGE_INVALID');
  assert.match(err.message, /CVE-2024-21626/);
});

test('a config blob that does not hash to its digest: DIGEST_MISMATCH', async () => {
  const record = store.record([store.layer(tar([{ name: 'f', data: '' }]))], { Cmd: ['x'] });
  writeFileSync(blobPath(store.imagesDir, record.configDigest), '{"config":{"User":"0"}}');
  const err = await prepareImage(await linuxSys(), store.imagesDir, record).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof FaasboxError && err.code === 'DIGEST_MISMATCH', String(err));
});
