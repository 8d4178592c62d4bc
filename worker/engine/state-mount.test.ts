import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mountSourceAt, STATE_MOUNT_SOURCE } from './state-mount.js';

const mountinfo = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  `90 22 0:51 / /var/lib/faasbox/containers rw,nosuid,nodev,noexec,relatime shared:40 - tmpfs ${STATE_MOUNT_SOURCE} rw,size=16384k,mode=700`,
  '91 90 0:52 / /var/lib/faasbox/containers/abc/disk rw shared:41 - tmpfs faasbox-abc rw,size=65536k',
  '92 22 0:53 / /srv/other rw - tmpfs tmpfs rw',
  '93 92 0:54 / /srv/other rw - tmpfs stacked rw',
].join('\n');

test('the source of the mount exactly at a path, the topmost when stacked', () => {
  assert.equal(mountSourceAt('/var/lib/faasbox/containers', mountinfo), STATE_MOUNT_SOURCE);
  assert.equal(mountSourceAt('/var/lib/faasbox/containers/abc/disk', mountinfo), 'faasbox-abc');
  assert.equal(mountSourceAt('/var/lib/faasbox', mountinfo), undefined, 'only an exact mount point counts');
  assert.equal(mountSourceAt('/srv/other', mountinfo), 'stacked');
});
