/**
 * Packages are checked at deploy by streaming them through the unpacker's reader, rules
 * and bounds: what cannot be unpacked, or would unpack past a bound, is refused with
 * 400/413 naming the member and the rule or bound, and nothing is stored.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { manyFilesTarGz, tar, zeroTarGz, zeroZip, zip } from '../support/archives.js';
import { redisForFile } from '../support/redis.js';
import { testGateway, type TestGateway } from './harness.js';

const server = redisForFile();
let gw: TestGateway;
const work = mkdtempSync(path.join(tmpdir(), 'faasbox-packages-'));
after(() => rmSync(work, { recursive: true, force: true }));

beforeEach(async () => {
  gw = await testGateway(server);
});
afterEach(async () => {
  await gw.close();
});

const b64 = (b: Buffer) => b.toString('base64');

/** Deploys and checks the refusal: status, code, the field, the words; no host path, no command, nothing stored. */
async function refused(pkg: Buffer, status: 400 | 413, field: string, words: RegExp, entry = 'index.mjs') {
  const res = await gw.deploy('pkg', { runtime: 'nodejs20', package: b64(pkg), entry });
  assert.equal(res.status, status, JSON.stringify(res.json));
  const err = res.json.error;
  assert.equal(err.code, status === 400 ? 'VALIDATION_FAILED' : 'PAYLOAD_TOO_LARGE');
  assert.match(err.message, words);
  if (status === 400) assert.equal(err.details.issues[0].path, field);
  assert.doesNotMatch(err.message, /\/tmp|\/var\/|\/proc|tar -|busybox|unzip/);
  assert.deepEqual(await gw.redis.keys(`${gw.prefix}:code:*`), [], 'no code blob stored');
  assert.equal((await gw.deploy('pkg', { runtime: 'nodejs20', code: 'export default () => 1' })).status, 201, 'the name is still free');
  await gw.deps.registry.delete('pkg');
  return err;
}

describe('packages accepted', () => {
  test('a tar.gz from GNU tar and a zip from Python, with nested entries', async () => {
    const src = path.join(work, 'src');
    mkdirSync(path.join(src, 'lib'), { recursive: true });
    writeFileSync(path.join(src, 'lib/handler.mjs'), 'export const run = () => 1;');
    const tgz = execFileSync('tar', ['-czf', '-', '-C', src, '.']);
    const t = await gw.deploy('tgz', { runtime: 'nodejs20', package: b64(tgz), entry: 'lib/handler.mjs', handler: 'run' });
    assert.equal(t.status, 201, JSON.stringify(t.json));
    assert.equal(t.json.spec.code.format, 'tar.gz');
    const out = path.join(work, 'fn.zip');
    execFileSync('python3', ['-I', '-m', 'zipfile', '-c', out, 'lib'], { cwd: src });
    const z = await gw.deploy('zipped', { runtime: 'nodejs20', package: b64(readFileSync(out)), entry: 'lib/handler.mjs', handler: 'run' });
    assert.equal(z.status, 201, JSON.stringify(z.json));
    assert.equal(z.json.spec.code.format, 'zip');
  });
});

describe('packages refused at deploy', () => {
  test('a 1 GiB zip bomb of zeros (about 1 MB) is 413 naming the bound, before it is inflated', async () => {
    const bomb = await zeroZip(1024 ** 3);
    assert.ok(bomb.length < 2 * 1024 * 1024, `${bomb.length} bytes`);
    const err = await refused(bomb, 413, 'package', /member "zeros": unpacks to more than 250000000 bytes/);
    assert.deepEqual(err.details, { bound: 'maxUnpackedBytes', limit: 250_000_000 });
  });

  test('a tar.gz of 1 GiB of zeros is 413 naming the bound', async () => {
    const bomb = await zeroTarGz(1024 ** 3);
    assert.ok(bomb.length < 2 * 1024 * 1024, `${bomb.length} bytes`);
    await refused(bomb, 413, 'package', /member "zeros": unpacks to more than 250000000 bytes/);
  });

  test('a tar.gz of 100k files is 413 by the entry bound', async () => {
    const err = await refused(manyFilesTarGz(100_000), 413, 'package', /member "f10000": too many members.*maxEntries = 10000/);
    assert.equal(err.details.bound, 'maxEntries');
  });

  test('character and block devices and FIFOs are 400 naming the member', async () => {
    await refused(gzipSync(tar([{ name: 'index.mjs', data: '' }, { name: 'dev/mem', type: '3' }])), 400, 'package', /member "dev\/mem": is a character device/);
    await refused(gzipSync(tar([{ name: 'sda', type: '4' }])), 400, 'package', /member "sda": is a block device/);
    await refused(gzipSync(tar([{ name: 'fifo', type: '6' }])), 400, 'package', /member "fifo": is a FIFO/);
    await refused(zip([{ name: 'mem', unixMode: 0o020644 }]), 400, 'package', /member "mem": is a character device/);
  });

  test('traversal, absolute paths and writes through a symlink are 400 naming the member', async () => {
    await refused(gzipSync(tar([{ name: '../x', data: 'x' }])), 400, 'package', /member "\.\.\/x": path traversal/);
    await refused(gzipSync(tar([{ name: '/abs', data: 'x' }])), 400, 'package', /member "\/abs": absolute path/);
    const through = tar([{ name: 'index.mjs', data: '' }, { name: 'd', type: '2', linkname: 'index.mjs' }, { name: 'd/x', data: 'x' }]);
    await refused(gzipSync(through), 400, 'package', /member "d\/x": its path goes through the symlink "d"/);
    await refused(zip([{ name: 'index.mjs', data: '' }, { name: 'up', data: '../../../../../etc', unixMode: 0o120777 }]), 400, 'package', /member "up": symlink to .* points outside the package/);
    await refused(zip([{ name: 'abs', data: '/etc/shadow', unixMode: 0o120777 }]), 400, 'package', /member "abs": symlink to the absolute path/);
  });

  test('junk with a gzip header, or a zip signature, is 400', async () => {
    await refused(Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.from('junk junk junk junk')]), 400, 'package', /package: not valid gzip data/);
    await refused(gzipSync('pretend tar'), 400, 'package', /not a tar archive/);
    await refused(Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(26)]), 400, 'package', /not a zip archive/);
  });

  test('an entry that is not a file of the package is 400 naming entry', async () => {
    await refused(gzipSync(tar([{ name: 'other.mjs', data: '' }])), 400, 'entry', /entry: "index\.mjs" is not a file in the package/);
    await refused(gzipSync(tar([{ name: 'index.mjs/', type: '5' }])), 400, 'entry', /is not a file in the package \(it is a directory\)/);
  });

  test('entry paths: one rule for code and packages', async () => {
    for (const entry of ['./a.mjs', 'a//b.mjs', 'a/', 'a/../b.mjs', 'a b.mjs']) {
      const res = await gw.deploy('e', { runtime: 'nodejs20', code: 'export default () => 1', entry });
      assert.equal(res.status, 400, entry);
      assert.equal(res.json.error.details.issues[0].path, 'entry', entry);
    }
    assert.equal((await gw.deploy('e', { runtime: 'nodejs20', code: 'export default () => 1', entry: 'lib/handler.mjs' })).status, 201);
  });
});
