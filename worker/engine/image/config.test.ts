/** The image config's checks, on a fake rootfs (files and symlink resolutions given as maps). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkStopSignal, checkWorkingDir, imageProcess, parseRunConfig, resolveUser, type RootReader } from './config.js';

function fakeRoot(files: Record<string, string>, links: Record<string, string> = {}): RootReader & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    readFile(p) {
      reads.push(p);
      return files[p] === undefined ? undefined : Buffer.from(files[p]!);
    },
    realpath(p) {
      return p === '/loop' ? undefined : (links[p] ?? p);
    },
  };
}

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\nbad:x:notanumber:1:x:/:/bin/sh\nhuge:x:4294967296:0:x:/:/bin/sh\n';
const GROUP = 'root:x:0:\napp:x:1001:\nstaff:x:50:app,other\naudio:x:29:other\n';
const root = () => fakeRoot({ '/etc/passwd': PASSWD, '/etc/group': GROUP });

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  return 'no error';
};

describe('image config', () => {
  test('Entrypoint + Cmd, and a CMD given replaces Cmd only', () => {
    const cfg = { Entrypoint: ['/bin/tini', '--'], Cmd: ['node', 'server.js'] };
    assert.deepEqual(imageProcess(cfg, root()).args, ['/bin/tini', '--', 'node', 'server.js']);
    assert.deepEqual(imageProcess(cfg, root(), { cmd: ['sh'] }).args, ['/bin/tini', '--', 'sh']);
    assert.match(code(() => imageProcess({}, root())), /IMAGE_INVALID: .*both empty/);
  });

  test('Env: the caller\'s entries replace the image\'s of the same key; malformed entries refused', () => {
    const p = imageProcess({ Cmd: ['x'], Env: ['PATH=/usr/bin', 'A=1', 'B=2'] }, root(), { env: ['A=override'] });
    assert.deepEqual(p.env, ['PATH=/usr/bin', 'B=2', 'A=override']);
    assert.match(code(() => imageProcess({ Cmd: ['x'], Env: ['=nokey'] }, root())), /IMAGE_INVALID: image config: Env/);
    assert.match(code(() => parseRunConfig({ config: { Env: 'PATH=/bin' } })), /Env must be an array of strings/);
  });

  test('User by name comes from the image\'s own /etc/passwd and /etc/group, with its supplementary groups', () => {
    const r = root();
    assert.deepEqual(resolveUser('app', r), { uid: 1000, gid: 1001, groups: [50] });
    assert.deepEqual(r.reads, ['/etc/passwd', '/etc/group'], 'only the image\'s files are read, through the reader');
    assert.deepEqual(resolveUser('app:staff', root()), { uid: 1000, gid: 50, groups: [] });
    assert.deepEqual(resolveUser('1000', root()), { uid: 1000, gid: 1001, groups: [50] });
    assert.deepEqual(resolveUser('4242', root()), { uid: 4242, gid: 0, groups: [] }, 'a uid with no entry runs with gid 0, as Docker');
    assert.deepEqual(resolveUser('4242:7', root()), { uid: 4242, gid: 7, groups: [] });
    assert.match(code(() => resolveUser('nobody-here', root())), /not in the image's \/etc\/passwd/);
    assert.match(code(() => resolveUser('app:nogroup', root())), /not in the image's \/etc\/group/);
    assert.match(code(() => resolveUser('root', fakeRoot({}))), /not in the image's \/etc\/passwd/, 'no passwd in the image: a name cannot resolve (the host\'s is never read)');
  });

  test('ids past 2^31-1 are refused (CVE-2024-40635), as User and as passwd entries', () => {
    for (const u of ['2147483648', '4294967296', '0:4294967296', '99999999999999999999999']) {
      assert.match(code(() => resolveUser(u, root())), /IMAGE_INVALID: .*CVE-2024-40635/, u);
    }
    assert.deepEqual(resolveUser('2147483647', root()), { uid: 2147483647, gid: 0, groups: [] });
    assert.match(code(() => resolveUser('huge', root())), /not in the image's \/etc\/passwd/, 'an entry with an id past the bound is skipped');
    assert.match(code(() => resolveUser('a:b:c', root())), /not "user\[:group\]"/);
  });

  test('WorkingDir through /proc/self/fd or a symlink into /proc is refused (CVE-2024-21626)', () => {
    const r = fakeRoot({ '/app': '' }, { '/app': '/app', '/link': '/proc/self/fd/7', '/up/../proc/1/cwd': '/proc/1/cwd' });
    assert.equal(checkWorkingDir('/app', r), '/app');
    assert.equal(checkWorkingDir('app', r), '/app', 'relative to the root');
    for (const wd of ['/proc/self/fd/7', '/proc', '/sys/fs/cgroup', '/link', '/../../proc/self/cwd', '/up/../proc/1/cwd']) {
      assert.match(code(() => checkWorkingDir(wd, r)), /IMAGE_INVALID: .*CVE-2024-21626/, wd);
    }
    assert.equal(checkWorkingDir('/../../../work', r), '/work', '".." stops at the rootfs root');
    assert.match(code(() => checkWorkingDir('/loop', r)), /symlink loop/);
    assert.match(code(() => imageProcess({ Cmd: ['x'] }, r, { cwd: '/proc/self/fd/3' })), /CVE-2024-21626/, 'an override is checked the same way');
  });

  test('StopSignal by name, short name or number; nonsense refused; SIGTERM by default', () => {
    assert.equal(checkStopSignal(undefined), 'SIGTERM');
    assert.equal(checkStopSignal('SIGQUIT'), 'SIGQUIT');
    assert.equal(checkStopSignal('int'), 'SIGINT');
    assert.equal(checkStopSignal('9'), 'SIGKILL');
    assert.match(code(() => checkStopSignal('SIGNOPE')), /StopSignal "SIGNOPE" is not a signal/);
  });

  test('no User: faasbox\'s default user, not root; a caller\'s --user overrides the image\'s', () => {
    const p = imageProcess({ Cmd: ['x'] }, root());
    assert.deepEqual([p.uid, p.gid], [65534, 65534]);
    assert.equal(imageProcess({ Cmd: ['x'], User: 'app' }, root(), { user: '0:0' }).uid, 0);
  });

  test('parseRunConfig type-checks the fields it honours', () => {
    assert.deepEqual(parseRunConfig({ config: { User: 'app', Cmd: ['a'], Entrypoint: null, WorkingDir: '/w', StopSignal: 'SIGINT', Labels: { x: 'y' } } }), {
      User: 'app',
      Cmd: ['a'],
      WorkingDir: '/w',
      StopSignal: 'SIGINT',
    });
    assert.deepEqual(parseRunConfig({}), {});
    assert.match(code(() => parseRunConfig({ config: { User: 0 } })), /User must be a string/);
    assert.match(code(() => parseRunConfig({ config: { Cmd: ['a\0b'] } })), /NUL/);
  });
});
