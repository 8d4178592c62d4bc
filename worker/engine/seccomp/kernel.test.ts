/**
 * The compiled filter against the real kernel: a throwaway helper (testdata/apply.c)
 * installs it exactly as faasbox-init does, probes syscalls, then execs. The kernel's own
 * verifier checks the program on install, so this also proves it is well-formed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { compileSeccomp } from './bpf.js';
import { ALLOW, defaultProfile } from './profile.js';

const srcDir = path.dirname(fileURLToPath(import.meta.url)).replace(`${path.sep}dist${path.sep}`, path.sep);
const x64 = process.arch === 'x64';

let dir = '';
let helper = '';
let defaultProgram = '';
let permissiveProgram = '';

function runHelper(program: string, ...args: string[]): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const r = spawnSync(helper, [program, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function probe(program: string): Map<string, string> {
  const r = runHelper(program, 'probe');
  assert.equal(r.status, 0, `helper failed (signal ${r.signal}): ${r.stderr}\n${r.stdout}`);
  return new Map(r.stdout.trim().split('\n').map((l) => l.split(' ', 2) as [string, string]));
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'faasbox-seccomp-'));
  helper = path.join(dir, 'apply');
  const cc = spawnSync('cc', ['-O1', '-Wall', '-Wextra', '-Werror', '-o', helper, path.join(srcDir, 'testdata', 'apply.c'), '-lpthread'], { encoding: 'utf8' });
  assert.equal(cc.status, 0, `cc failed: ${cc.error?.message ?? cc.stderr}`);
  defaultProgram = path.join(dir, 'default.bpf');
  writeFileSync(defaultProgram, compileSeccomp(defaultProfile));
  permissiveProgram = path.join(dir, 'permissive.bpf');
  writeFileSync(permissiveProgram, compileSeccomp({ defaultAction: ALLOW, rules: [] }));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('seccomp filter in the real kernel', () => {
  it('the default profile refuses namespace, mount and kernel syscalls, and still lets exec through', () => {
    const got = probe(defaultProgram);
    const expected: Record<string, string> = {
      seccomp_mode: '2',
      getpid: 'ok',
      unshare_newuts: 'EPERM',
      mount: 'EPERM',
      ptrace: 'EPERM',
      keyctl: 'EPERM',
      bpf: 'EPERM',
      setns: 'EPERM',
      clone_newuser: 'EPERM',
      clone3: 'ENOSYS',
      socket_vsock: 'EAFNOSUPPORT',
      socket_unix: 'ok',
      ioctl_tiocsti_high_bits: 'EPERM',
      personality_query: 'ok',
      personality_read_implies_exec: 'EPERM',
      fork: 'exit=7',
      pthread_create: 'ok',
      ...(x64 ? { x32_getpid: 'EPERM', i386_abi: 'signal=SYS' } : {}),
    };
    assert.deepEqual(Object.fromEntries(got), expected); // no "execve" line: /bin/true ran and exited 0
  });

  it('the probes notice a filter that allows everything (control)', () => {
    const got = probe(permissiveProgram);
    assert.equal(got.get('seccomp_mode'), '2');
    assert.equal(got.get('mount'), 'ENOENT');
    assert.equal(got.get('setns'), 'EBADF');
    assert.notEqual(got.get('clone3'), 'ENOSYS');
    assert.equal(got.get('ioctl_tiocsti_high_bits'), 'ENOTTY');
    assert.equal(got.get('personality_read_implies_exec'), 'ok');
  });

  it('Node.js runs under the default profile: threads, workers, child processes, sockets, files', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const cp = require('node:child_process');
      const fs = require('node:fs');
      const f = require('node:os').tmpdir() + '/faasbox-seccomp-' + process.pid;
      fs.writeFileSync(f, 'x'); fs.rmSync(f);
      const out = [cp.execFileSync('/bin/sh', ['-c', 'echo child']).toString().trim()];
      new Worker('require("node:worker_threads").parentPort.postMessage("worker")', { eval: true }).once('message', (m) => {
        out.push(m);
        const srv = require('node:http').createServer((q, s) => s.end('http')).listen(0, '127.0.0.1', () => {
          require('node:http').get('http://127.0.0.1:' + srv.address().port, (res) => {
            res.on('data', (d) => out.push(String(d))).on('end', () => { srv.close(); console.log(out.join(' ')); });
          });
        });
      });`;
    const r = runHelper(defaultProgram, 'exec', process.execPath, '-e', script);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'child worker http');
  });

  for (const [name, argv, want] of [
    [
      'Python',
      ['/usr/bin/python3', '-c', 'import subprocess, threading; t = threading.Thread(target=print, args=("thread",)); t.start(); t.join(); print(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip())'],
      'thread\nchild',
    ],
    ['busybox', ['/usr/bin/busybox', 'sh', '-c', 'busybox ls / >/dev/null && busybox echo sh'], 'sh'],
  ] as const) {
    it(`${name} runs under the default profile`, (t) => {
      if (!existsSync(argv[0])) return t.skip(`${argv[0]} not installed`);
      const r = runHelper(defaultProgram, 'exec', ...argv);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), want);
    });
  }
});
