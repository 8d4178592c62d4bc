/**
 * Builds the real images from this machine's files and checks them from the inside
 * (chroot: a test's shortcut, not how the engine runs them).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildImage, type BuiltImage } from '../../images/build.js';
import { askPython, sharedLibraries } from '../../images/recipe.js';
import { digestTree } from '../../images/digest.js';
import { main as imageCli } from '../../cli/images.js';
import { RUNTIME_COMMAND } from '../../images/protocol.js';
import { ImageBuildError } from '../../images/errors.js';
import { runToEnd, testEngine, type TestEngine } from '../support/engine.js';
import { ShimProcess } from '../support/shim.js';

/** Absolute: the commands below run with an empty environment, so no PATH. */
const CHROOT = '/usr/sbin/chroot';
const work = mkdtempSync(path.join(tmpdir(), 'faasbox-image-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

let node: BuiltImage;
let busybox: BuiltImage;
let python: BuiltImage;

test('builds nodejs20: node, every library ldd lists, the loader, the shim, the skeleton', async () => {
  const phases = new Set<string>();
  node = await buildImage('nodejs20', path.join(work, 'a'), { onProgress: (p) => phases.add(p.phase) });
  assert.equal(node.built, true);
  assert.deepEqual([...phases], ['plan', 'copy', 'digest', 'done']);
  const r = node.dir;
  assert.equal(statSync(r).mode & 0o777, 0o755, 'containers run as nobody: the root must be traversable');
  assert.equal(statSync(path.join(r, 'usr/bin/node')).size, statSync('/usr/bin/node').size);
  const libs = sharedLibraries('/usr/bin/node');
  assert.ok(libs.some((l) => l.includes('ld-linux')), `the loader is among ${libs.join(', ')}`);
  for (const lib of libs) assert.ok(statSync(path.join(r, lib)).isFile(), `${lib} in the layer`);
  for (const f of ['runtime.cjs', 'handler.mjs', 'http.mjs']) assert.ok(existsSync(path.join(r, 'opt/faasbox/runtime', f)), f);
  assert.deepEqual(
    readdirSync(path.join(r, 'opt/faasbox/runtime')).filter((f) => !/\.[mc]js$/.test(f)),
    [],
    'tests and TypeScript stay out of the image',
  );
  assert.equal(statSync(path.join(r, 'tmp')).mode & 0o7777, 0o1777);
  for (const d of ['var/task', 'dev', 'proc']) assert.ok(statSync(path.join(r, d)).isDirectory(), d);
  assert.match(readFileSync(path.join(r, 'etc/passwd'), 'utf8'), /^nobody:x:65534:65534:/m);
  assert.match(readFileSync(path.join(r, 'etc/group'), 'utf8'), /^nogroup:x:65534:/m);
  assert.equal(readFileSync(path.join(r, 'etc/resolv.conf'), 'utf8'), '');
  assert.equal(readlinkSync(path.join(r, 'bin/sh')), '/bin/busybox');
  const manifest = JSON.parse(readFileSync(node.manifestPath, 'utf8')) as { digest: string; name: string };
  assert.equal(manifest.digest, node.digest);
  assert.equal(manifest.name, 'nodejs20');
  assert.equal(readlinkSync(path.join(work, 'a', 'nodejs20')), path.basename(path.dirname(node.dir)));
  assert.equal(readdirSync(path.join(work, 'a')).filter((n) => n.includes('.tmp-')).length, 0, 'no temp dirs left');
});

test('node in the layer runs with only the layer (its own loader and libraries)', () => {
  const out = execFileSync(CHROOT, [node.dir, '/usr/bin/node', '-p', 'process.version + " " + require("os").userInfo().username'], { env: {}, encoding: 'utf8' });
  assert.equal(out.trim(), `${process.version} root`);
  const asNobody = execFileSync(CHROOT, ['--userspec=65534:65534', node.dir, '/usr/bin/node', '-p', 'require("os").userInfo().username'], { env: {}, encoding: 'utf8' });
  assert.equal(asNobody.trim(), 'nobody');
});

test('the shim in the layer boots, loads code from /var/task and answers an invocation', async () => {
  // A hard-linked clone: the layer itself must stay untouched, only the clone gets code.
  const clone = path.join(work, 'clone');
  execFileSync('cp', ['-al', node.dir, clone]);
  writeFileSync(path.join(clone, 'var/task/index.mjs'), 'export default async (e) => { console.log("inside"); return { got: e, cwd: process.cwd() }; };');
  const shim = new ShimProcess(CHROOT, [clone, ...RUNTIME_COMMAND.nodejs20]);
  try {
    assert.equal((await shim.next()).type, 'ready');
    assert.equal((await shim.load('/var/task', 'index.mjs', { handler: 'default', env: {} })).type, 'loaded');
    assert.deepEqual(await shim.invoke(42, { id: 'c1' }), { type: 'result', id: 'c1', ok: true, value: { got: 42, cwd: '/var/task' } });
    assert.equal(await shim.until('stdout', 'c1'), 'inside\n');
    await shim.close();
    assert.ok(!existsSync(path.join(node.dir, 'var/task/index.mjs')), 'the layer was not written through the clone');
  } finally {
    shim.child.kill('SIGKILL');
    rmSync(clone, { recursive: true, force: true });
  }
});

test('builds busybox: a shell and applets that run', async () => {
  busybox = await buildImage('busybox', path.join(work, 'a'));
  assert.equal(busybox.built, true);
  assert.equal(lstatSync(path.join(busybox.dir, 'bin/busybox')).isFile(), true);
  assert.equal(readlinkSync(path.join(busybox.dir, 'bin/sh')), '/bin/busybox');
  const out = execFileSync(CHROOT, ['--userspec=65534:65534', busybox.dir, '/bin/sh', '-c', 'echo hello; id -un; ls /'], { env: {}, encoding: 'utf8' });
  const [hello, nobody] = out.split('\n');
  assert.equal(hello, 'hello');
  assert.equal(nobody, 'nobody');
});

test('the digest is stable across builds, and a second build of the same recipe does nothing', async () => {
  const before = statSync(node.dir);
  const again = await buildImage('nodejs20', path.join(work, 'a'));
  assert.equal(again.built, false);
  assert.equal(again.dir, node.dir);
  assert.equal(again.digest, node.digest);
  const after_ = statSync(node.dir);
  assert.equal(after_.ino, before.ino);
  assert.equal(after_.mtimeMs, before.mtimeMs);

  // A build from scratch elsewhere (different day, different inode numbers) hashes the same.
  const elsewhere = await buildImage('nodejs20', path.join(work, 'b'));
  assert.equal(elsewhere.built, true);
  assert.equal(elsewhere.digest, node.digest);
  assert.equal(digestTree(node.dir).digest, node.digest, 'the recorded digest is the digest of what is on disk');
  const bb2 = await buildImage('busybox', path.join(work, 'b'));
  assert.equal(bb2.digest, busybox.digest);
  assert.notEqual(bb2.digest, node.digest);

  // And the digest does see content: one changed byte in a copy changes it.
  const copy = path.join(work, 'bb-copy');
  cpSync(busybox.dir, copy, { recursive: true, verbatimSymlinks: true });
  writeFileSync(path.join(copy, 'etc/hosts'), '127.0.0.2 localhost\n');
  assert.notEqual(digestTree(copy).digest, busybox.digest);
});

test('CLI: build --json, --help, and typed errors for bad input', async () => {
  const logs: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => void logs.push(a.join(' '));
  try {
    assert.equal(await imageCli(['build', 'busybox', '--out', path.join(work, 'a'), '--json']), 0);
    assert.equal(await imageCli(['build', '--help']), 0);
  } finally {
    console.log = orig;
  }
  const res = JSON.parse(logs[0]!) as { dir: string; digest: string; built: boolean };
  assert.deepEqual([res.dir, res.digest, res.built], [busybox.dir, busybox.digest, false]);
  assert.match(logs[1]!, /faasbox image build <name>/);
  await assert.rejects(imageCli(['build', 'cobol85', '--out', work]), (e: unknown) => e instanceof ImageBuildError && e.code === 'UNKNOWN_IMAGE');
  await assert.rejects(imageCli(['build']), (e: unknown) => e instanceof ImageBuildError && e.code === 'USAGE');
});

/** A layer's files below `dir` (relative), recursively. */
function filesUnder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const ent of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
    if (ent.isDirectory()) out.push(...filesUnder(dir, r));
    else out.push(r);
  }
  return out;
}

test('builds python3: the interpreter and its libraries, a lean stdlib with bytecode for every module, the shim', async () => {
  const phases = new Set<string>();
  python = await buildImage('python3', path.join(work, 'a'), { onProgress: (p) => phases.add(p.phase) });
  assert.equal(python.built, true);
  assert.deepEqual([...phases], ['plan', 'copy', 'compile', 'digest', 'done']);
  const r = python.dir;
  assert.equal(statSync(path.join(r, 'usr/bin/python3')).size, statSync('/usr/bin/python3').size);
  for (const lib of sharedLibraries('/usr/bin/python3')) assert.ok(statSync(path.join(r, lib)).isFile(), `${lib} in the layer`);
  // Extension modules' own libraries come too (the `libraries` of the hostTree step).
  // Named as the host's python3 names them (3.11 on Debian 12, 3.12 on Ubuntu 24.04).
  const hostStdlib = askPython('sysconfig.get_paths()["stdlib"]');
  const ext = askPython('sysconfig.get_config_var("EXT_SUFFIX")');
  const tag = askPython('sys.implementation.cache_tag');
  const configDir = `config-${askPython('sysconfig.get_python_version()')}-${askPython('sys.implementation._multiarch')}`;
  for (const lib of sharedLibraries(`${hostStdlib}/lib-dynload/_ssl${ext}`)) {
    assert.ok(statSync(path.join(r, lib)).isFile(), `${lib} (for _ssl) in the layer`);
  }
  const stdlib = path.join(r, hostStdlib);
  for (const f of ['os.py', 'json/__init__.py', 'asyncio/base_events.py', `lib-dynload/_asyncio${ext}`]) {
    assert.ok(existsSync(path.join(stdlib, f)), f);
  }
  for (const gone of ['test', 'lib2to3', 'ensurepip', 'idlelib', 'tkinter', configDir, 'sitecustomize.py', 'unittest/test']) {
    assert.ok(!existsSync(path.join(stdlib, gone)), `${gone} is left out`);
  }
  // Every .py has its bytecode, every .pyc has its source (nothing stale copied from the host).
  const files = filesUnder(stdlib);
  const sources = files.filter((f) => f.endsWith('.py'));
  const compiled = files.filter((f) => f.endsWith('.pyc'));
  assert.ok(sources.length > 300, `${sources.length} modules`);
  assert.deepEqual(
    compiled.map((f) => f.replace(new RegExp(`__pycache__/([^/]+)\\.${tag}\\.pyc$`), '$1.py')).sort(),
    sources.sort(),
  );
  // PEP 552 flags word: 0b01 = hash-based, source not checked; so copied mtimes never invalidate it.
  const header = readFileSync(path.join(stdlib, `json/__pycache__/__init__.${tag}.pyc`)).subarray(4, 8);
  assert.equal(header.readUInt32LE(0), 1);
  const shim = path.join(r, 'opt/faasbox/runtime');
  assert.deepEqual(readdirSync(shim).sort(), ['__pycache__', '_faasbox_handler.py', 'runtime.py'], 'tests and TypeScript stay out of the image');
  assert.ok(existsSync(path.join(shim, '__pycache__/_faasbox_handler.cpython-311.pyc')));
  for (const f of filesUnder(r)) {
    const st = lstatSync(path.join(r, f));
    if (!st.isSymbolicLink()) assert.ok((st.mode & 0o004) !== 0, `${f} is readable by nobody`);
  }
  assert.ok(python.manifest.bytes < 60e6, `the layer stays lean: ${(python.manifest.bytes / 1e6).toFixed(1)} MB`);
  assert.equal(statSync(path.join(r, 'tmp')).mode & 0o7777, 0o1777);
  assert.equal(readlinkSync(path.join(r, 'bin/sh')), '/bin/busybox');
});

test('python3 builds reproducibly: the same digest from scratch elsewhere, nothing done the second time', async () => {
  const again = await buildImage('python3', path.join(work, 'a'));
  assert.equal(again.built, false);
  const elsewhere = await buildImage('python3', path.join(work, 'b'));
  assert.equal(elsewhere.built, true);
  assert.equal(elsewhere.digest, python.digest, 'bytecode compiled in another directory is byte-identical');
  assert.equal(digestTree(python.dir).digest, python.digest);
  rmSync(path.dirname(elsewhere.dir), { recursive: true, force: true });
});

test('python3 runs in a real container from the layer alone: imports json and asyncio, from the bytecode', async () => {
  const te: TestEngine = await testEngine('pyimage');
  try {
    const script = [
      'import json, asyncio, hashlib, sys, os',
      'async def main(): return 6 * 7',
      'print(json.dumps({"answer": asyncio.run(main()), "uid": os.getuid(), "utf8": sys.flags.utf8_mode,',
      '  "sha": hashlib.sha256(b"x").hexdigest()[:8], "site": "site" in sys.modules}))',
    ].join('\n');
    const { result, stdout, stderr } = await runToEnd(te.engine, { rootfs: { layers: [python.dir] }, process: { args: [...RUNTIME_COMMAND.python3.slice(0, -1), '-v', '-c', script] } });
    assert.equal(result.exitCode, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), {
      answer: 42,
      uid: 65534,
      utf8: 1,
      sha: '2d711642',
      site: false,
    });
    // -v names where each module's code object came from: the layer's bytecode, never a compile.
    assert.match(stderr, /# code object from '\/usr\/lib\/python3\.11\/json\/__pycache__\/__init__\.cpython-311\.pyc'/);
    assert.match(stderr, /# code object from '\/usr\/lib\/python3\.11\/asyncio\/__pycache__\/base_events\.cpython-311\.pyc'/);
    assert.doesNotMatch(stderr, /# code object from '[^']*\.py'/, 'no module was compiled from source');
  } finally {
    await te.cleanup();
  }
});

test('the python3 shim in the layer boots, loads /var/task/handler.py and answers an invocation', async () => {
  const clone = path.join(work, 'pyclone');
  execFileSync('cp', ['-al', python.dir, clone]);
  writeFileSync(path.join(clone, 'var/task/handler.py'), 'import os\n\ndef handler(event, context):\n    print("inside")\n    return {"got": event, "cwd": os.getcwd()}\n');
  const shim = new ShimProcess(CHROOT, ['--userspec=65534:65534', clone, ...RUNTIME_COMMAND.python3]);
  try {
    const ready = await shim.next();
    assert.equal(ready.type, 'ready');
    assert.equal(ready.type === 'ready' && ready.runtime, 'python3');
    assert.equal((await shim.load('/var/task', 'handler.py', { handler: 'handler', env: {} })).type, 'loaded');
    assert.deepEqual(await shim.invoke(42, { id: 'p1' }), { type: 'result', id: 'p1', ok: true, value: { got: 42, cwd: '/var/task' } });
    assert.equal(await shim.until('stdout', 'p1'), 'inside\n');
    await shim.close();
    assert.ok(!existsSync(path.join(python.dir, 'var/task/handler.py')), 'the layer was not written through the clone');
    assert.ok(!existsSync(path.join(clone, 'var/task/__pycache__')), '-B: no bytecode written beside the function');
  } finally {
    shim.child.kill('SIGKILL');
    rmSync(clone, { recursive: true, force: true });
  }
});
