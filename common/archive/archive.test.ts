/** The unpacker on small crafted archives: readers, rules, bounds and the writer. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { tar, tarHeader, zip } from '../../test/support/archives.js';
import { ArchiveBoundError, ArchiveError, DEFAULT_UNPACK_BOUNDS, readArchive, TreeWriter, unpackArchive, walkArchive, type ArchiveFormat, type UnpackBounds } from './index.js';

const work = mkdtempSync(path.join(tmpdir(), 'faasbox-archive-'));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const freshDir = () => {
  const d = path.join(work, `root-${n++}`);
  mkdirSync(d);
  return d;
};

async function members(format: ArchiveFormat, bytes: Buffer, bounds: UnpackBounds = DEFAULT_UNPACK_BOUNDS) {
  const out: { path: string; type: string; mode: number; linkTarget?: string; data: string }[] = [];
  for await (const e of readArchive(format, bytes, bounds)) {
    const chunks: Buffer[] = [];
    for await (const c of e.body()) chunks.push(c);
    out.push({ path: e.path, type: e.type, mode: e.mode, ...(e.linkTarget !== undefined ? { linkTarget: e.linkTarget } : {}), data: Buffer.concat(chunks).toString() });
  }
  return out;
}

/** The check the deploy makes; resolves to the error it throws. */
async function refusal(format: ArchiveFormat, bytes: Buffer, bounds: UnpackBounds = DEFAULT_UNPACK_BOUNDS): Promise<ArchiveError> {
  try {
    await walkArchive(format, bytes, bounds);
  } catch (err) {
    assert.ok(err instanceof ArchiveError, `an ArchiveError, got ${err}`);
    return err;
  }
  assert.fail('the archive was accepted');
}

describe('tar reader', () => {
  test('reads what GNU tar writes, in gnu and pax formats, long names included', async () => {
    const src = freshDir();
    const long = `${'d'.repeat(120)}/${'f'.repeat(150)}.txt`;
    mkdirSync(path.join(src, 'd'.repeat(120)));
    writeFileSync(path.join(src, long), 'long');
    mkdirSync(path.join(src, 'lib'));
    writeFileSync(path.join(src, 'lib/a.mjs'), 'export default 1');
    symlinkSync('lib/a.mjs', path.join(src, 'link.mjs'));
    for (const format of ['gnu', 'pax']) {
      const bytes = execFileSync('tar', [`--format=${format}`, '-czf', '-', '-C', src, '.']);
      const got = await members('tar.gz', bytes);
      const byPath = new Map(got.map((m) => [m.path.replace(/^\.\//, ''), m]));
      assert.equal(byPath.get(long)?.data, 'long', format);
      assert.equal(byPath.get('lib/a.mjs')?.data, 'export default 1', format);
      assert.equal(byPath.get('link.mjs')?.type, 'symlink', format);
      assert.equal(byPath.get('link.mjs')?.linkTarget, 'lib/a.mjs', format);
      assert.equal(byPath.get('lib/')?.type, 'dir', format);
    }
  });

  test('refuses junk behind a gzip header, and a tar with a bad checksum, naming neither host paths nor commands', async () => {
    const junk = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.from('definitely not deflate data at all')]);
    assert.match((await refusal('tar.gz', junk)).message, /not valid gzip data/);
    assert.match((await refusal('tar.gz', gzipSync('plain text, not a tar'))).message, /not a tar archive/);
    const bad = tar([{ name: 'a', data: 'x' }]);
    bad[0] = 0x41; // the name changes, the checksum does not
    assert.match((await refusal('tar', bad)).message, /bad header checksum at offset 0/);
  });

  test('refuses "..", absolute paths, device nodes and FIFOs, naming the member', async () => {
    const cases: [Parameters<typeof tar>[0][number], RegExp][] = [
      [{ name: '../x', data: 'x' }, /member "\.\.\/x": path traversal/],
      [{ name: 'a/../../x', data: 'x' }, /path traversal/],
      [{ name: '/abs', data: 'x' }, /member "\/abs": absolute path/],
      [{ name: 'mem', type: '3' }, /member "mem": is a character device/],
      [{ name: 'sda', type: '4' }, /member "sda": is a block device/],
      [{ name: 'pipe', type: '6' }, /member "pipe": is a FIFO/],
      [{ name: 'sparse', type: 'S' }, /unsupported tar member type 'S'/],
      [{ name: 'up', type: '2', linkname: '../../etc' }, /member "up": symlink to "\.\.\/\.\.\/etc" points outside the package/],
      [{ name: 'abs', type: '2', linkname: '/etc/passwd' }, /symlink to the absolute path/],
      [{ name: 'hl', type: '1', linkname: '/etc/shadow' }, /absolute path/],
      [{ name: 'hl', type: '1', linkname: 'missing' }, /hard link to "missing", which is not an earlier file/],
    ];
    for (const [m, re] of cases) assert.match((await refusal('tar', tar([m]))).message, re, m.name);
  });

  test('refuses a member written through an earlier symlink, or through a file, and duplicates', async () => {
    const through = tar([
      { name: 'inside', type: '5', mode: 0o755 },
      { name: 'link', type: '2', linkname: 'inside' },
      { name: 'link/x', data: 'x' },
    ]);
    assert.match((await refusal('tar', through)).message, /member "link\/x": its path goes through the symlink "link"/);
    assert.match((await refusal('tar', tar([{ name: 'f', data: '1' }, { name: 'f/x', data: '2' }]))).message, /goes through the file "f"/);
    // Each link alone stays inside; through the first, the second would climb out.
    const chain = tar([{ name: 'x/', type: '5' }, { name: 'x/y', type: '2', linkname: '..' }, { name: 'z', type: '2', linkname: 'x/y/..' }]);
    assert.match((await refusal('tar', chain)).message, /member "z": symlink to "x\/y\/\.\.": "\.\." may only lead the target/);
    await walkArchive('tar', tar([{ name: 'node_modules/.bin/tsc', type: '2', linkname: '../typescript/bin/tsc' }]), DEFAULT_UNPACK_BOUNDS);
    assert.match((await refusal('tar', tar([{ name: 'f', data: '1' }, { name: './f', data: '2' }]))).message, /member "\.\/f": appears twice/);
  });

  test('bounds: a declared size past the content bound is refused at the header, before its body is read', async () => {
    // 1 GiB declared, no body at all: the bound must fire before the reader looks for the bytes.
    const header = Buffer.concat([tarHeader({ name: 'zeros', size: 1024 ** 3 })]);
    const err = await refusal('tar', header);
    assert.ok(err instanceof ArchiveBoundError);
    assert.equal(err.bound, 'maxUnpackedBytes');
    const small = { ...DEFAULT_UNPACK_BOUNDS, maxUnpackedBytes: 10 };
    const two = tar([{ name: 'a', data: '123456' }, { name: 'b', data: '123456' }]);
    assert.match((await refusal('tar', two, small)).message, /member "b": unpacks to more than 10 bytes \(bound maxUnpackedBytes = 10\)/);
  });

  test('bounds: entries (implicit directories count), path and name lengths', async () => {
    const b = { ...DEFAULT_UNPACK_BOUNDS, maxEntries: 3 };
    assert.equal(((await refusal('tar', tar([{ name: 'a/b/c/d', data: '' }]), b)) as ArchiveBoundError).bound, 'maxEntries');
    await walkArchive('tar', tar([{ name: 'a/b/c', data: '' }]), b); // exactly three inodes
    const longPath = Buffer.concat([tarHeader({ name: './././@LongLink', type: 'L', size: 5001 }), Buffer.from('a/'.repeat(2500) + 'b'), Buffer.alloc(512 - (5001 % 512)), tar([{ name: 'x', data: '' }])]);
    assert.equal(((await refusal('tar', longPath)) as ArchiveBoundError).bound, 'maxPathBytes');
    assert.equal(((await refusal('tar', tar([{ name: 'n'.repeat(99), data: '' }]), { ...DEFAULT_UNPACK_BOUNDS, maxNameBytes: 50 })) as ArchiveBoundError).bound, 'maxNameBytes');
    // A 60 KB absolute pax path: refused by the bound, and the message shows only its start.
    const record = (k: string, v: string) => {
      const body = ` ${k}=${v}\n`;
      let len = body.length + 1;
      while (`${len}${body}`.length !== len) len++;
      return `${len}${body}`;
    };
    const paxData = record('path', '/' + 'p'.repeat(60_000));
    const pax = Buffer.concat([tarHeader({ name: 'PaxHeader', type: 'x', data: paxData }), Buffer.from(paxData), Buffer.alloc((512 - (Buffer.byteLength(paxData) % 512)) % 512), tar([{ name: 'short', data: '' }])]);
    const big = await refusal('tar', pax);
    assert.equal((big as ArchiveBoundError).bound, 'maxPathBytes');
    assert.ok(big.message.length < 400, `${big.message.length} chars`);
  });

  test('a tar of 100k empty files is refused by the entry bound at the 10,001st member', async () => {
    const blocks: Buffer[] = [];
    for (let i = 0; i < 100_000; i++) blocks.push(tarHeader({ name: `f${i}`, data: '' }));
    const err = await refusal('tar.gz', gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024)])));
    assert.ok(err instanceof ArchiveBoundError);
    assert.equal(err.bound, 'maxEntries');
    assert.equal(err.member, 'f10000');
  });
});

describe('zip reader', () => {
  test('reads stored and deflated members, with Unix modes and symlinks', async () => {
    const z = zip([
      { name: 'lib/', unixMode: 0o040755 },
      { name: 'lib/a.py', data: 'x = 1\n'.repeat(100), deflate: true },
      { name: 'run.sh', data: '#!/bin/sh\n', unixMode: 0o104755 },
      { name: 'a.py', data: 'lib/a.py', unixMode: 0o120777 },
    ]);
    const got = await members('zip', z);
    assert.deepEqual(got.map((m) => [m.path, m.type]), [['lib/', 'dir'], ['lib/a.py', 'file'], ['run.sh', 'file'], ['a.py', 'symlink']]);
    assert.equal(got[1]!.data, 'x = 1\n'.repeat(100));
    assert.equal(got[2]!.mode, 0o4755);
    assert.equal(got[3]!.linkTarget, 'lib/a.py');
  });

  test('what Python\'s zipfile writes reads back', async () => {
    const src = freshDir();
    mkdirSync(path.join(src, 'app'));
    writeFileSync(path.join(src, 'app/main.py'), 'def run(e, c): return 1\n');
    const out = path.join(work, `py-${n++}.zip`);
    execFileSync('python3', ['-I', '-m', 'zipfile', '-c', out, 'app'], { cwd: src });
    const got = await members('zip', readFileSync(out));
    assert.ok(got.some((m) => m.path === 'app/main.py' && m.data.includes('def run')));
  });

  test('refuses a bomb by its declared size, a member inflating past its declared size, a bad CRC, escaping symlinks and devices', async () => {
    const zeros = Buffer.alloc(4 * 1024 * 1024);
    const bomb = await refusal('zip', zip([{ name: 'zeros', data: zeros, deflate: true }]), { ...DEFAULT_UNPACK_BOUNDS, maxUnpackedBytes: 1024 * 1024 });
    assert.ok(bomb instanceof ArchiveBoundError);
    assert.match(bomb.message, /member "zeros": unpacks to more than 1048576 bytes/);
    assert.match((await refusal('zip', zip([{ name: 'liar', data: zeros, deflate: true, declaredSize: 1000 }]))).message, /member "liar": inflates past the 1000 bytes/);
    assert.match((await refusal('zip', zip([{ name: 'c', data: 'abc', crc: 1 }]))).message, /CRC mismatch/);
    assert.match((await refusal('zip', zip([{ name: 'evil', data: '../../../../etc/passwd', unixMode: 0o120777 }]))).message, /member "evil": symlink to "\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd" points outside/);
    assert.match((await refusal('zip', zip([{ name: 'evil', data: '/etc', unixMode: 0o120777 }]))).message, /absolute path/);
    assert.match((await refusal('zip', zip([{ name: 'mem', unixMode: 0o020644 }]))).message, /member "mem": is a character device/);
    assert.match((await refusal('zip', zip([{ name: '../up', data: 'x' }]))).message, /path traversal/);
    assert.match((await refusal('zip', Buffer.concat([Buffer.from([0x50, 0x4b, 3, 4]), Buffer.alloc(26)]))).message, /not a zip archive/);
    const many = zip(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, data: '' })));
    assert.equal(((await refusal('zip', many, { ...DEFAULT_UNPACK_BOUNDS, maxEntries: 10 })) as ArchiveBoundError).bound, 'maxEntries');
  });
});

describe('writer', () => {
  test('unpacks files, dirs, symlinks (as links) and hard links; modes 0644/0755 with setuid, setgid and sticky dropped', async () => {
    const root = freshDir();
    await unpackArchive(
      'tar',
      tar([
        { name: './', type: '5', mode: 0o1777 },
        { name: 'bin/', type: '5', mode: 0o3777 },
        { name: 'bin/tool', data: '#!/bin/sh\n', mode: 0o6755 },
        { name: 'lib/a.mjs', data: 'a', mode: 0o600 },
        { name: 'a.mjs', type: '2', linkname: 'lib/a.mjs' },
        { name: 'b.mjs', type: '1', linkname: 'lib/a.mjs' },
      ]),
      root,
      DEFAULT_UNPACK_BOUNDS,
    );
    assert.equal(lstatSync(path.join(root, 'bin')).mode & 0o7777, 0o755);
    assert.equal(lstatSync(path.join(root, 'bin/tool')).mode & 0o7777, 0o755);
    assert.equal(lstatSync(path.join(root, 'lib')).mode & 0o7777, 0o755);
    assert.equal(lstatSync(path.join(root, 'lib/a.mjs')).mode & 0o7777, 0o644);
    assert.ok(lstatSync(path.join(root, 'a.mjs')).isSymbolicLink());
    assert.equal(readlinkSync(path.join(root, 'a.mjs')), 'lib/a.mjs');
    assert.equal(lstatSync(path.join(root, 'b.mjs')).ino, lstatSync(path.join(root, 'lib/a.mjs')).ino);
  });

  test('the kernel refuses a path through a symlink even when the rules are bypassed', async () => {
    const root = freshDir();
    const outside = freshDir();
    symlinkSync(outside, path.join(root, 'link'));
    const w = TreeWriter.open(root);
    try {
      await assert.rejects(
        w.write({ parts: ['link', 'x'], path: 'link/x', type: 'file', mode: 0o644, size: 1, body: async function* () { yield Buffer.from('x'); } }),
        /member "link\/x": cannot open its parent directory: its path goes through a symlink or a file/,
      );
      await assert.rejects(
        w.write({ parts: ['link'], path: 'link', type: 'file', mode: 0o644, size: 1, body: async function* () { yield Buffer.from('x'); } }),
        /member "link": cannot create the file: it exists already/,
      );
    } finally {
      w.close();
    }
    assert.deepEqual(readdirSync(outside), []);
  });

  test('a bound reached mid-archive stops there: the member past it is not written', async () => {
    const root = freshDir();
    const bytes = tar([{ name: 'first', data: '12345' }, { name: 'second', data: '1234567890' }, { name: 'third', data: '1' }]);
    await assert.rejects(unpackArchive('tar', bytes, root, { ...DEFAULT_UNPACK_BOUNDS, maxUnpackedBytes: 10 }), ArchiveBoundError);
    assert.deepEqual(readdirSync(root), ['first']);
  });
});

test('a tar that ends right after its last member\'s content (no padding, no end blocks, as umoci 0.4.7 writes) is read whole; a cut inside content is refused', async () => {
  const whole = tar([{ name: 'a', data: 'first\n' }, { name: 'b', data: 'kept\n' }]);
  // The header of b starts at 1024 and its 5 bytes of content follow at 1536.
  const unpadded = whole.subarray(0, 1536 + 5);
  assert.deepEqual(
    (await members('tar', unpadded)).map((m) => [m.path, m.data]),
    [['a', 'first\n'], ['b', 'kept\n']],
  );
  const cut = whole.subarray(0, 1536 + 3);
  assert.match((await refusal('tar', cut)).message, /truncated inside the member's content/);
});
