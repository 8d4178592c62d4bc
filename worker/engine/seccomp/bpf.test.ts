import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { describe, it } from 'node:test';
import { ARCHES, type ArchInfo, AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, auditArchFor } from './arch.js';
import {
  BPF_ABS,
  BPF_LD,
  BPF_MAXINSNS,
  BPF_W,
  compileSeccomp,
  compileSeccompInsns,
  decodeProgram,
  encodeProgram,
  SECCOMP_DATA_ARCH,
  SECCOMP_RET_KILL_PROCESS,
} from './bpf.js';
import { SeccompError } from './errors.js';
import { ALLOW, CLONE_NAMESPACE_FLAGS, defaultProfile, errno, type SeccompArg, type SeccompProfile, type SeccompRule, TIOCSTI } from './profile.js';
import { X86_64_SYSCALLS } from './syscalls.js';
import { evaluate, expectedVerdict, type Insn, run, validate, type Verdict } from './testdata/interpreter.js';

const { EPERM, ENOSYS, EAFNOSUPPORT } = constants.errno;
const X86 = X86_64_SYSCALLS;
const AUDIT_ARCH_I386 = 0x40000003;
const ALLOWED: Verdict = { action: 'allow' };
const DENIED: Verdict = { action: 'errno', errno: EPERM };

const CLONE_THREAD_FLAGS = 0x003d0f00; // what glibc's pthread_create passes
const FORK_FLAGS = 0x01200011; // CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWNS = 0x00020000;

const x86Prog = decodeProgram(compileSeccomp(defaultProfile, 'x86_64'));
const armProg = decodeProgram(compileSeccomp(defaultProfile, 'aarch64'));

function x86(name: string, ...args: (number | bigint)[]): Verdict {
  const nr = X86[name];
  assert.ok(nr !== undefined, `no x86_64 syscall ${name}`);
  return evaluate(x86Prog, { nr, arch: AUDIT_ARCH_X86_64, args });
}

/** Deterministic PRNG (mulberry32) so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function syntheticArch(count: number, stride = 1): ArchInfo {
  const syscalls: Record<string, number> = {};
  for (let i = 0; i < count; i++) syscalls[`sys${i}`] = i * stride;
  return { name: 'x86_64', auditArch: AUDIT_ARCH_X86_64, syscalls, hasX32: true };
}

/** Checks every syscall of `arch` against the profile's meaning, for each argument vector. */
function assertMatchesProfile(prog: readonly Insn[], profile: SeccompProfile, arch: ArchInfo, argSets: readonly (number | bigint)[][]): void {
  for (const [name, nr] of Object.entries(arch.syscalls))
    for (const args of argSets) {
      const got = evaluate(prog, { nr, arch: arch.auditArch, args });
      assert.deepEqual(got, expectedVerdict(profile, name, args), `${name} (${nr}) with args ${args.map(String).join(',')}`);
    }
}

describe('compileSeccomp: the default profile on x86_64', () => {
  it('is a valid program within the kernel limit, starting with the arch check', () => {
    validate(x86Prog);
    assert.ok(x86Prog.length <= BPF_MAXINSNS);
    assert.deepEqual(x86Prog[0], { code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k: SECCOMP_DATA_ARCH });
  });

  it('kills the process for any other architecture', () => {
    for (const arch of [AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0]) {
      const { ret } = run(x86Prog, { nr: X86.read!, arch });
      assert.equal(ret, SECCOMP_RET_KILL_PROCESS, `arch 0x${arch.toString(16)}`);
    }
  });

  it('allows what ordinary programs need', () => {
    for (const name of ['read', 'write', 'execve', 'mmap', 'futex', 'epoll_wait', 'openat', 'exit_group', 'rt_sigreturn', 'getrandom'])
      assert.deepEqual(x86(name), ALLOWED, name);
  });

  it('allows clone for threads and fork', () => {
    assert.deepEqual(x86('clone', CLONE_THREAD_FLAGS), ALLOWED);
    assert.deepEqual(x86('clone', FORK_FLAGS), ALLOWED);
    assert.deepEqual(x86('clone', 0x1_0000_0000n | BigInt(FORK_FLAGS)), ALLOWED); // upper bits are not namespace flags
  });

  it('refuses clone with any namespace flag', () => {
    assert.deepEqual(x86('clone', FORK_FLAGS | CLONE_NEWUSER), DENIED);
    for (let bit = 0; bit < 32; bit++) {
      const flag = 1 << bit;
      if ((CLONE_NAMESPACE_FLAGS & flag) === 0) continue;
      assert.deepEqual(x86('clone', (CLONE_THREAD_FLAGS | flag) >>> 0), DENIED, `flag 0x${flag.toString(16)}`);
    }
  });

  it('makes clone3 fail with ENOSYS so libc falls back to clone', () => {
    assert.deepEqual(x86('clone3', 0, 88), { action: 'errno', errno: ENOSYS });
  });

  it('refuses the privileged syscalls with EPERM', () => {
    for (const name of ['mount', 'umount2', 'pivot_root', 'ptrace', 'unshare', 'setns', 'bpf', 'init_module', 'finit_module', 'keyctl', 'kexec_load', 'perf_event_open'])
      assert.deepEqual(x86(name), DENIED, name);
  });

  it('refuses x32 syscall numbers', () => {
    for (const nr of [0x40000000, 0x40000000 + X86.read!, 0x40000000 + X86.getpid!, 0x40000000 + 512, 0xffffffff])
      assert.deepEqual(evaluate(x86Prog, { nr, arch: AUDIT_ARCH_X86_64 }), DENIED, `nr 0x${nr.toString(16)}`);
  });

  it('gives the default action to unknown numbers and ENOSYS to numbers newer than the table', () => {
    const known = new Set(Object.values(X86));
    const max = Math.max(...known);
    const gap = [...Array(max).keys()].find((n) => !known.has(n))!;
    assert.deepEqual(evaluate(x86Prog, { nr: gap, arch: AUDIT_ARCH_X86_64 }), DENIED, `unassigned nr ${gap}`);
    for (const nr of [max + 1, max + 100, 0x3fffffff])
      assert.deepEqual(evaluate(x86Prog, { nr, arch: AUDIT_ARCH_X86_64 }), { action: 'errno', errno: ENOSYS }, `nr ${nr}`);
  });

  it('refuses TIOCSTI even with junk in the upper half of the argument', () => {
    assert.deepEqual(x86('ioctl', 0, TIOCSTI), DENIED);
    assert.deepEqual(x86('ioctl', 0, (0xdeadn << 32n) | BigInt(TIOCSTI)), DENIED);
    assert.deepEqual(x86('ioctl', 0, 0x5401 /* TCGETS */), ALLOWED);
  });

  it('answers AF_VSOCK sockets with EAFNOSUPPORT and allows the rest', () => {
    assert.deepEqual(x86('socket', 40, 1, 0), { action: 'errno', errno: EAFNOSUPPORT });
    assert.deepEqual(x86('socket', (1n << 32n) | 40n, 1, 0), { action: 'errno', errno: EAFNOSUPPORT });
    assert.deepEqual(x86('socket', 2, 1, 0), ALLOWED);
  });

  it('allows only the harmless personality values', () => {
    for (const p of [0, 8, 0x20000, 0xffffffff]) assert.deepEqual(x86('personality', p), ALLOWED, `0x${p.toString(16)}`);
    for (const p of [0x0400000 /* READ_IMPLIES_EXEC */, 0x0040000 /* ADDR_NO_RANDOMIZE */]) assert.deepEqual(x86('personality', p), DENIED);
  });

  it('agrees with the profile for every syscall in the table', () => {
    const argSets = [[], [FORK_FLAGS, TIOCSTI], [CLONE_NEWUSER | FORK_FLAGS], [40, TIOCSTI | 0x1_0000_0000], [0xffffffff], [-1n, -1n]];
    assertMatchesProfile(x86Prog, defaultProfile, ARCHES.x86_64, argSets);
  });

  it('takes a handful of steps for hot syscalls (binary search, not a linear scan)', () => {
    for (const name of ['read', 'write', 'futex', 'epoll_wait', 'close']) {
      const { steps } = run(x86Prog, { nr: X86[name]!, arch: AUDIT_ARCH_X86_64 });
      assert.ok(steps <= 16, `${name} took ${steps} steps`);
    }
  });
});

describe('compileSeccomp: the default profile on aarch64', () => {
  it('checks the aarch64 arch and applies the same policy', () => {
    validate(armProg);
    const arm = ARCHES.aarch64.syscalls;
    const at = (name: string, ...args: number[]): Verdict => evaluate(armProg, { nr: arm[name]!, arch: AUDIT_ARCH_AARCH64, args });
    assert.equal(run(armProg, { nr: arm.read!, arch: AUDIT_ARCH_X86_64 }).ret, SECCOMP_RET_KILL_PROCESS);
    assert.deepEqual(at('read'), ALLOWED);
    assert.deepEqual(at('clone', FORK_FLAGS), ALLOWED);
    assert.deepEqual(at('clone', FORK_FLAGS | CLONE_NEWNS), DENIED);
    assert.deepEqual(at('clone3'), { action: 'errno', errno: ENOSYS });
    assert.deepEqual(at('mount'), DENIED);
    assertMatchesProfile(armProg, defaultProfile, ARCHES.aarch64, [[], [FORK_FLAGS | CLONE_NEWUSER], [40, TIOCSTI]]);
  });
});

describe('compileSeccomp: layout of large programs', () => {
  it('compiles 400 allowed syscalls, interleaved with denied ones, with every jump in range', () => {
    const arch = syntheticArch(1000);
    const allowed = Object.keys(arch.syscalls).filter((_, i) => i % 2 === 0 && i < 800);
    assert.equal(allowed.length, 400);
    const profile: SeccompProfile = { defaultAction: errno(EPERM), rules: [{ names: allowed, action: ALLOW }] };
    const prog = compileSeccompInsns(profile, arch);
    validate(prog); // every jt/jf is a u8 and lands inside the program
    assert.ok(prog.length <= BPF_MAXINSNS, `${prog.length} instructions`);
    assertMatchesProfile(prog, profile, arch, [[]]);
  });

  it('keeps far returns reachable when many syscalls carry argument checks', () => {
    const arch = syntheticArch(600, 3);
    const names = Object.keys(arch.syscalls);
    const rules: SeccompRule[] = names.slice(0, 300).map((n, i) => ({
      names: [n],
      action: i % 3 === 0 ? errno(i % 4000) : ALLOW,
      args: [{ index: i % 6, op: 'gt', value: i * 7919 }],
    }));
    rules.push({ names: names.slice(0, 450), action: ALLOW });
    const profile: SeccompProfile = { defaultAction: errno(EPERM), newerSyscallAction: errno(ENOSYS), rules };
    const prog = compileSeccompInsns(profile, arch);
    validate(prog);
    const args = [0, 1, 2, 3, 4, 5].map((i) => i * 400000);
    assertMatchesProfile(prog, profile, arch, [[], args, args.map((v) => v + 1_000_000), [-1, -1, -1, -1, -1, -1]]);
  });

  it('stays in range across many program sizes (trampoline boundaries)', () => {
    // Both branches of a jump needing a trampoline at exactly 255 is rare; sweep sizes to hit it.
    const rand = prng(42);
    for (let n = 100; n < 700; n += 3) {
      const arch = syntheticArch(n + 50);
      const names = Object.keys(arch.syscalls);
      const rules: SeccompRule[] = [
        { names: names.filter((_, i) => i % 7 === 3).slice(0, 40), action: errno(ENOSYS), args: [{ index: 1, op: 'ne', value: n }] },
        { names: names.filter(() => rand() < 0.5), action: ALLOW },
      ];
      const profile: SeccompProfile = { defaultAction: errno(EPERM), newerSyscallAction: { kind: 'kill_thread' }, rules };
      const prog = compileSeccompInsns(profile, arch);
      validate(prog);
      for (const [name, nr] of Object.entries(arch.syscalls).filter((_, i) => i % 5 === 0))
        assert.deepEqual(evaluate(prog, { nr, arch: AUDIT_ARCH_X86_64, args: [0, n] }), expectedVerdict(profile, name, [0, n]));
    }
  });

  it('refuses a profile that would exceed BPF_MAXINSNS', () => {
    const arch = syntheticArch(9000);
    const profile: SeccompProfile = { defaultAction: errno(EPERM), rules: [{ names: Object.keys(arch.syscalls).filter((_, i) => i % 2 === 0), action: ALLOW }] };
    assert.throws(() => compileSeccompInsns(profile, arch), (e: unknown) => e instanceof SeccompError && e.code === 'PROGRAM_TOO_LONG');
  });
});

describe('compileSeccomp: argument conditions', () => {
  // Values at the edges of the 32-bit halves, where a wrong half or a signed compare shows.
  const edges = [0n, 1n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x1_0000_0000n, 0x1_0000_0001n, 0x1_ffff_ffffn, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n];
  const ops = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked_eq'] as const;

  it('evaluates every op and width exactly like the profile says (seeded fuzz)', () => {
    const rand = prng(0x5ecc0);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const arch = syntheticArch(40);
    const names = Object.keys(arch.syscalls);
    for (let round = 0; round < 40; round++) {
      const rules: SeccompRule[] = [];
      for (let r = 0; r < 30; r++) {
        const width = pick([32, 64] as const);
        const fit = (v: bigint): bigint => BigInt.asUintN(width, v);
        const args: SeccompArg[] = [];
        for (let c = Math.floor(rand() * 3); c > 0; c--) {
          const op = pick(ops);
          const value = fit(pick(edges) + BigInt(Math.floor(rand() * 3)) - 1n);
          args.push({ index: Math.floor(rand() * 6), op, value, width, ...(op === 'masked_eq' ? { valueTwo: value & fit(pick(edges)) } : {}) });
        }
        const action = pick([ALLOW, errno(EPERM), errno(ENOSYS), errno(Math.floor(rand() * 4096)), { kind: 'kill_thread' } as const, { kind: 'trap' } as const]);
        rules.push({ names: [pick(names), pick(names)], action, args });
      }
      const profile: SeccompProfile = { defaultAction: pick([errno(EPERM), ALLOW, { kind: 'log' } as const]), rules };
      const prog = compileSeccompInsns(profile, arch);
      validate(prog);
      const argSets: bigint[][] = [];
      for (let k = 0; k < 12; k++) argSets.push([0, 1, 2, 3, 4, 5].map(() => BigInt.asUintN(64, pick(edges) + BigInt(Math.floor(rand() * 3)) - 1n)));
      assertMatchesProfile(prog, profile, arch, argSets);
    }
  });

  it('treats negative operands as two\'s complement', () => {
    const arch = syntheticArch(2);
    const profile: SeccompProfile = { defaultAction: ALLOW, rules: [{ names: ['sys1'], action: errno(EPERM), args: [{ index: 0, op: 'eq', value: -1 }] }] };
    const prog = compileSeccompInsns(profile, arch);
    assert.deepEqual(evaluate(prog, { nr: 1, arch: AUDIT_ARCH_X86_64, args: [(1n << 64n) - 1n] }), DENIED);
    assert.deepEqual(evaluate(prog, { nr: 1, arch: AUDIT_ARCH_X86_64, args: [0xffffffff] }), ALLOWED);
  });

  it('denies x32 numbers even when the default action allows', () => {
    const prog = compileSeccompInsns({ defaultAction: ALLOW, rules: [] }, ARCHES.x86_64);
    assert.deepEqual(evaluate(prog, { nr: 0x40000000, arch: AUDIT_ARCH_X86_64 }), DENIED);
    assert.deepEqual(evaluate(prog, { nr: 0, arch: AUDIT_ARCH_X86_64 }), ALLOWED);
  });
});

describe('compileSeccomp: bad input', () => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      if (e instanceof SeccompError) return e.code;
      throw e;
    }
    return undefined;
  };

  it('names the syscalls it does not know', () => {
    const err = (() => {
      try {
        compileSeccomp({ defaultAction: errno(EPERM), rules: [{ names: ['read', 'raed'], action: ALLOW }] }, 'x86_64');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof SeccompError);
    assert.equal(err.code, 'UNKNOWN_SYSCALL');
    assert.match(err.message, /raed/);
  });

  it('skips names that exist only on the other architecture', () => {
    const prog = decodeProgram(compileSeccomp({ defaultAction: errno(EPERM), rules: [{ names: ['arch_prctl', 'read'], action: ALLOW }] }, 'aarch64'));
    assert.deepEqual(evaluate(prog, { nr: ARCHES.aarch64.syscalls.read!, arch: AUDIT_ARCH_AARCH64 }), ALLOWED);
  });

  it('refuses malformed actions and conditions', () => {
    const bad: SeccompProfile[] = [
      { defaultAction: errno(4096), rules: [] },
      { defaultAction: errno(-1), rules: [] },
      { defaultAction: { kind: 'nope' } as never, rules: [] },
      { defaultAction: ALLOW, rules: [{ names: [], action: ALLOW }] },
      { defaultAction: ALLOW, rules: [{ names: ['read'], action: ALLOW, args: [{ index: 6, op: 'eq', value: 0 }] }] },
      { defaultAction: ALLOW, rules: [{ names: ['read'], action: ALLOW, args: [{ index: 0, op: 'masked_eq', value: 1 }] }] },
      { defaultAction: ALLOW, rules: [{ names: ['read'], action: ALLOW, args: [{ index: 0, op: 'eq', value: 1n << 64n }] }] },
      { defaultAction: ALLOW, rules: [{ names: ['read'], action: ALLOW, args: [{ index: 0, op: 'eq', value: 0x1_0000_0000, width: 32 }] }] },
      { defaultAction: ALLOW, rules: [{ names: ['read'], action: ALLOW, args: [{ index: 0, op: 'between' as never, value: 0 }] }] },
    ];
    for (const p of bad) assert.equal(code(() => compileSeccomp(p, 'x86_64')), 'INVALID_PROFILE', JSON.stringify(p, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)));
  });

  it('refuses an unknown architecture', () => {
    assert.equal(code(() => compileSeccomp(defaultProfile, 'sparc' as never)), 'UNSUPPORTED_ARCH');
  });
});

describe('encoding and arch helpers', () => {
  it('lays out struct sock_filter as u16 code, u8 jt, u8 jf, u32 k, little-endian', () => {
    const buf = encodeProgram([{ code: 0x15, jt: 1, jf: 2, k: 0xc000003e }]);
    assert.deepEqual([...buf], [0x15, 0x00, 0x01, 0x02, 0x3e, 0x00, 0x00, 0xc0]);
    assert.deepEqual(decodeProgram(buf), [{ code: 0x15, jt: 1, jf: 2, k: 0xc000003e }]);
    assert.equal(compileSeccomp(defaultProfile, 'x86_64').length % 8, 0);
  });

  it('maps process.arch to AUDIT_ARCH values', () => {
    assert.equal(auditArchFor('x64'), 0xc000003e);
    assert.equal(auditArchFor('arm64'), 0xc00000b7);
    assert.throws(() => auditArchFor('ia32'), (e: unknown) => e instanceof SeccompError && e.code === 'UNSUPPORTED_ARCH');
  });

  it('defaults to the architecture Node runs on', () => {
    const host = process.arch === 'x64' ? 'x86_64' : 'aarch64';
    assert.deepEqual(compileSeccomp(defaultProfile), compileSeccomp(defaultProfile, host));
  });
});
