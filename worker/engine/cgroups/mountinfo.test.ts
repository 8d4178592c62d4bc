import { test } from 'node:test';
import assert from 'node:assert/strict';
import { v1ControllerMounts } from './mountinfo.js';

test('maps each v1 controller to its mount point, co-mounted ones to the same, ignoring cgroup2 and other filesystems', () => {
  const mountinfo = [
    '25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw',
    '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct',
    '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
    '39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
    '37 31 0:34 / /sys/fs/cgroup/my\\040freezer rw,relatime - cgroup cgroup rw,freezer',
    '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
    '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate',
    // A later bind mount of the memory hierarchy does not displace the first.
    '99 25 0:32 / /mnt/memory rw,relatime - cgroup cgroup rw,memory',
  ].join('\n');
  const m = v1ControllerMounts(mountinfo);
  assert.equal(m.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct');
  assert.equal(m.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
  assert.equal(m.get('memory'), '/sys/fs/cgroup/memory');
  assert.equal(m.get('pids'), '/sys/fs/cgroup/pids');
  assert.equal(m.get('freezer'), '/sys/fs/cgroup/my freezer');
  assert.equal(m.has('rw'), false);
  assert.equal(m.has('nsdelegate'), false);
});

test('optional fields before the separator do not shift the mount point', () => {
  const m = v1ControllerMounts('36 35 98:0 / /x/pids rw,noatime master:1 shared:4 propagate_from:2 - cgroup cgroup rw,pids\n');
  assert.equal(m.get('pids'), '/x/pids');
});
