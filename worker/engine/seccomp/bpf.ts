/**
 * Compiles a SeccompProfile into a classic-BPF program for
 * prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): an array of struct sock_filter
 * (u16 code, u8 jt, u8 jf, u32 k; 8 bytes, little-endian) that the C pre-exec stage
 * installs unchanged.
 *
 * Shape of the program:
 *
 *   ld  arch ; jeq AUDIT_ARCH ? next : KILL_PROCESS   other ABIs (i386 int 0x80) die
 *   ld  nr   ; jge 0x40000000 ? DENY : tree           x86_64 only: x32 numbers
 *   tree:    binary search over syscall-number intervals, each leaf a block
 *   blocks:  argument checks for syscalls with conditional rules
 *   returns: one RET per distinct action
 *
 * Why a binary search: an allowlist has ~300 syscalls; a linear chain of jeq's costs
 * up to 300 instructions on every syscall that is not near its head, the search costs
 * about log2(#intervals) ~ 7. Consecutive numbers with the same outcome are merged into
 * one interval first, so the tree stays small (x86_64's numbering is dense). Kernels since
 * 5.11 also cache "always allowed" numbers in a bitmap, which works with any layout as
 * long as the verdict for a number does not depend on arguments.
 *
 * Why it is assembled backwards: BPF jumps only go forward and jt/jf are 8-bit. Emitting
 * from the last instruction to the first means every jump target already has a known
 * position when the jump is emitted, so a target more than 255 instructions away is seen
 * at once and bridged with a trampoline placed right after the jump (a copy of the RET
 * when the target is a RET, otherwise `ja` with its 32-bit offset), and trampolines are
 * reused by later jumps while they remain in reach. No relaxation passes are needed.
 */
import { ARCHES, type ArchInfo, type SeccompArch, seccompArchFor, X32_SYSCALL_BIT } from './arch.js';
import { SeccompError } from './errors.js';
import type { SeccompAction, SeccompArg, SeccompOp, SeccompProfile } from './profile.js';

// <linux/bpf_common.h>
export const BPF_LD = 0x00;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_K = 0x00;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
/** The kernel refuses longer classic programs. */
export const BPF_MAXINSNS = 4096;
/** jt and jf are u8. */
export const BPF_MAX_COND_JUMP = 255;

// <linux/seccomp.h>
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ACTION_FULL = 0xffff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;
/** The kernel clamps larger errno values; refuse them instead of guessing. */
export const MAX_ERRNO = 4095;

/** Offsets in struct seccomp_data. args are u64 in native order: low half first on little-endian. */
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
export const SECCOMP_DATA_INSTRUCTION_POINTER = 8;
export const SECCOMP_DATA_ARGS = 16;
export const SECCOMP_DATA_SIZE = 64;

export const SOCK_FILTER_SIZE = 8;

export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export function encodeProgram(insns: readonly BpfInsn[]): Buffer {
  const buf = Buffer.alloc(insns.length * SOCK_FILTER_SIZE);
  insns.forEach((insn, i) => {
    const o = i * SOCK_FILTER_SIZE;
    buf.writeUInt16LE(insn.code, o);
    buf.writeUInt8(insn.jt, o + 2);
    buf.writeUInt8(insn.jf, o + 3);
    buf.writeUInt32LE(insn.k >>> 0, o + 4);
  });
  return buf;
}

export function decodeProgram(buf: Buffer): BpfInsn[] {
  if (buf.length % SOCK_FILTER_SIZE !== 0) throw new RangeError(`BPF program of ${buf.length} bytes is not a whole number of instructions`);
  const out: BpfInsn[] = [];
  for (let o = 0; o < buf.length; o += SOCK_FILTER_SIZE)
    out.push({ code: buf.readUInt16LE(o), jt: buf.readUInt8(o + 2), jf: buf.readUInt8(o + 3), k: buf.readUInt32LE(o + 4) });
  return out;
}

/** The SECCOMP_RET_* value for an action. */
export function actionToRet(action: SeccompAction): number {
  switch (action.kind) {
    case 'allow':
      return SECCOMP_RET_ALLOW;
    case 'errno':
      return (SECCOMP_RET_ERRNO | (action.errno & SECCOMP_RET_DATA)) >>> 0;
    case 'kill_process':
      return SECCOMP_RET_KILL_PROCESS;
    case 'kill_thread':
      return SECCOMP_RET_KILL_THREAD;
    case 'trap':
      return SECCOMP_RET_TRAP;
    case 'log':
      return SECCOMP_RET_LOG;
  }
}

/** Compiles `profile` for `arch` (default: the architecture Node runs on) into sock_filter bytes. */
export function compileSeccomp(profile: SeccompProfile, arch: SeccompArch = seccompArchFor()): Buffer {
  const info = ARCHES[arch];
  if (!info) throw new SeccompError('UNSUPPORTED_ARCH', `seccomp: unknown architecture ${String(arch)}; use x86_64 or aarch64`, { arch });
  return encodeProgram(compileSeccompInsns(profile, info));
}

/** As compileSeccomp, for any syscall table (tests use synthetic ones to stress the layout). */
export function compileSeccompInsns(profile: SeccompProfile, arch: ArchInfo): BpfInsn[] {
  const resolved = resolveProfile(profile, arch);
  const a = new BackwardAssembler();

  // Returns go last in the program; the kill for a foreign arch is emitted first so that
  // the more frequently used verdicts end up nearer the tree.
  const kill = a.ret(SECCOMP_RET_KILL_PROCESS);
  const retLabel = new Map<number, Label>([[SECCOMP_RET_KILL_PROCESS, kill]]);
  for (const k of resolved.retValues) if (!retLabel.has(k)) retLabel.set(k, a.ret(k));
  const labelOf = (k: number): Label => retLabel.get(k)!;

  const blockMemo = new Map<string, Label>();
  const byNr = new Map<number, Label>();
  for (const [nr, chain] of resolved.chains) {
    const key = chainKey(chain);
    let label = blockMemo.get(key);
    if (label === undefined) {
      label = compileChain(a, chain, labelOf);
      blockMemo.set(key, label);
    }
    byNr.set(nr, label);
  }

  const defaultLabel = labelOf(resolved.defaultRet);
  const intervals: Interval[] = [];
  const addInterval = (lo: number, label: Label): void => {
    if (intervals.at(-1)?.label !== label) intervals.push({ lo, label });
  };
  for (let nr = 0; nr <= resolved.maxNr; nr++) addInterval(nr, byNr.get(nr) ?? defaultLabel);
  addInterval(resolved.maxNr + 1, labelOf(resolved.newerRet));
  const root = compileTree(a, intervals, 0, intervals.length - 1);

  if (arch.hasX32) a.jump(BPF_JGE, X32_SYSCALL_BIT, labelOf(resolved.x32Ret), root);
  else a.fallTo(root);
  const loadNr = a.stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR);
  a.jump(BPF_JEQ, arch.auditArch, loadNr, kill);
  a.stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH);

  const program = a.finish();
  if (program.length > BPF_MAXINSNS)
    throw new SeccompError(
      'PROGRAM_TOO_LONG',
      `seccomp: the profile compiles to ${program.length} BPF instructions, over the kernel's limit of ${BPF_MAXINSNS}; merge rules or drop argument conditions`,
      { instructions: program.length },
    );
  return program;
}

// ---------------------------------------------------------------- profile -> chains ---

/** One argument comparison, normalised: unsigned values, 32-bit halves decided later. */
interface Cond {
  index: number;
  op: SeccompOp;
  value: bigint;
  valueTwo: bigint;
  width: 32 | 64;
}

/** One step of a syscall's decision: when all conds hold (none = always), return ret. */
interface Step {
  conds: Cond[];
  ret: number;
}

interface Resolved {
  /** Per syscall number with at least one rule: its steps, ending in an unconditional one. */
  chains: Map<number, Step[]>;
  defaultRet: number;
  newerRet: number;
  x32Ret: number;
  maxNr: number;
  retValues: Set<number>;
}

const OPS: ReadonlySet<string> = new Set<SeccompOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked_eq']);
const ACTION_KINDS: ReadonlySet<string> = new Set<SeccompAction['kind']>(['allow', 'errno', 'kill_process', 'kill_thread', 'trap', 'log']);

function invalid(message: string, details?: Record<string, unknown>): SeccompError {
  return new SeccompError('INVALID_PROFILE', `seccomp profile: ${message}`, details);
}

function checkedRet(action: SeccompAction, where: string): number {
  if (!action || !ACTION_KINDS.has(action.kind)) throw invalid(`${where}: unknown action ${JSON.stringify(action)}`);
  if (action.kind === 'errno' && !(Number.isInteger(action.errno) && action.errno >= 0 && action.errno <= MAX_ERRNO))
    throw invalid(`${where}: errno must be an integer in 0..${MAX_ERRNO}, got ${action.errno}`);
  return actionToRet(action);
}

function toUnsigned(v: number | bigint, width: 32 | 64, where: string): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw invalid(`${where}: ${v} is not a safe integer; pass a bigint`);
  const b = BigInt(v);
  const limit = 1n << BigInt(width);
  if (b >= limit || b < -(limit >> 1n)) throw invalid(`${where}: ${v} does not fit in ${width} bits`);
  return BigInt.asUintN(width, b);
}

function normaliseArg(arg: SeccompArg, where: string): Cond {
  if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index > 5) throw invalid(`${where}: index must be 0..5, got ${arg.index}`);
  if (!OPS.has(arg.op)) throw invalid(`${where}: unknown op ${JSON.stringify(arg.op)}`);
  const width = arg.width ?? 64;
  if (width !== 32 && width !== 64) throw invalid(`${where}: width must be 32 or 64, got ${String(width)}`);
  if (arg.op === 'masked_eq' && arg.valueTwo === undefined) throw invalid(`${where}: masked_eq needs valueTwo (the value arg & mask must equal)`);
  return {
    index: arg.index,
    op: arg.op,
    value: toUnsigned(arg.value, width, `${where}.value`),
    valueTwo: arg.valueTwo === undefined ? 0n : toUnsigned(arg.valueTwo, width, `${where}.valueTwo`),
    width,
  };
}

function resolveProfile(profile: SeccompProfile, arch: ArchInfo): Resolved {
  if (!profile || !Array.isArray(profile.rules)) throw invalid('rules must be an array');
  const defaultRet = checkedRet(profile.defaultAction, 'defaultAction');
  const newerRet = profile.newerSyscallAction ? checkedRet(profile.newerSyscallAction, 'newerSyscallAction') : defaultRet;
  // x32 calls are refused like anything no rule allows, but never let through by a permissive default.
  const permissive = profile.defaultAction.kind === 'allow' || profile.defaultAction.kind === 'log';
  const x32Ret = permissive ? actionToRet({ kind: 'errno', errno: 1 /* EPERM */ }) : defaultRet;
  const retValues = new Set<number>([defaultRet, newerRet, x32Ret]);

  const steps = new Map<number, Step[]>();
  const unknown: string[] = [];
  profile.rules.forEach((rule, i) => {
    const where = `rules[${i}]`;
    if (!Array.isArray(rule.names) || rule.names.length === 0) throw invalid(`${where}: names must be a non-empty array`);
    const ret = checkedRet(rule.action, `${where}.action`);
    retValues.add(ret);
    const conds = (rule.args ?? []).map((arg: SeccompArg, j: number) => normaliseArg(arg, `${where}.args[${j}]`));
    for (const name of rule.names) {
      const nr = Object.hasOwn(arch.syscalls, name) ? arch.syscalls[name] : undefined;
      if (nr === undefined) {
        if (!Object.values(ARCHES).some((other) => Object.hasOwn(other.syscalls, name)) && !unknown.includes(name)) unknown.push(name);
        continue;
      }
      const list = steps.get(nr) ?? [];
      // After an unconditional step nothing more can match; keep the first verdict.
      if (list.at(-1)?.conds.length !== 0) list.push({ conds, ret });
      steps.set(nr, list);
    }
  });
  if (unknown.length > 0)
    throw new SeccompError('UNKNOWN_SYSCALL', `seccomp profile: unknown syscall name(s) ${unknown.join(', ')}; check the spelling against syscalls.ts`, {
      names: unknown,
    });

  for (const list of steps.values()) if (list.at(-1)!.conds.length !== 0) list.push({ conds: [], ret: defaultRet });
  const numbers = Object.values(arch.syscalls);
  if (numbers.length === 0) throw new SeccompError('UNSUPPORTED_ARCH', `seccomp: empty syscall table for ${arch.name}`);
  const maxNr = Math.max(...numbers);
  if (arch.hasX32 && maxNr >= X32_SYSCALL_BIT) throw new SeccompError('UNSUPPORTED_ARCH', `seccomp: ${arch.name} table reaches into the x32 range`);
  return { chains: steps, defaultRet, newerRet, x32Ret, maxNr, retValues };
}

function chainKey(chain: readonly Step[]): string {
  return JSON.stringify(chain, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

// ------------------------------------------------------------------- code generation ---

/** A position counted from the end of the program: the instruction and everything after it. */
type Label = number;

interface Interval {
  /** First syscall number of the interval; it runs to the next interval's lo - 1. */
  lo: number;
  label: Label;
}

class BackwardAssembler {
  private readonly rev: BpfInsn[] = [];
  /** Trampolines by what they lead to, so later jumps can reuse one still in reach. */
  private readonly trampolines = new Map<string, Label>();

  /** The instruction that anything emitted now falls through to. */
  get next(): Label {
    return this.rev.length;
  }

  ret(k: number): Label {
    return this.push({ code: BPF_RET | BPF_K, jt: 0, jf: 0, k });
  }

  /** A non-jump instruction; it falls through to `next`. */
  stmt(code: number, k: number): Label {
    return this.push({ code, jt: 0, jf: 0, k });
  }

  /** A conditional jump on A `op` k. */
  jump(op: number, k: number, ifTrue: Label, ifFalse: Label): Label {
    // jf's trampoline, if any, is emitted after jt's is chosen: leave room for it.
    const t = this.reach(ifTrue, 1);
    const f = this.reach(ifFalse, 0);
    const here = this.rev.length + 1;
    return this.push({ code: BPF_JMP | op | BPF_K, jt: here - t - 1, jf: here - f - 1, k });
  }

  /** Makes `target` the instruction that runs after whatever is emitted next. */
  fallTo(target: Label): Label {
    return target === this.next ? target : this.trampoline(target);
  }

  finish(): BpfInsn[] {
    return [...this.rev].reverse();
  }

  private push(insn: BpfInsn): Label {
    if (insn.jt > BPF_MAX_COND_JUMP || insn.jf > BPF_MAX_COND_JUMP || insn.jt < 0 || insn.jf < 0)
      throw new Error(`unreachable: jump offset out of range (${insn.jt}, ${insn.jf})`);
    this.rev.push(insn);
    return this.rev.length;
  }

  private reach(target: Label, slack: number): Label {
    const inReach = (l: Label): boolean => this.rev.length + slack - l <= BPF_MAX_COND_JUMP;
    if (inReach(target)) return target;
    const key = this.keyOf(target);
    const near = this.trampolines.get(key);
    if (near !== undefined && inReach(near)) return near;
    const label = this.trampoline(target);
    this.trampolines.set(key, label);
    return label;
  }

  private trampoline(target: Label): Label {
    const insn = this.rev[target - 1]!;
    // A copy of a RET costs the same one instruction as a ja and saves a jump at run time.
    if (insn.code === (BPF_RET | BPF_K)) return this.ret(insn.k);
    return this.push({ code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k: this.rev.length - target });
  }

  private keyOf(target: Label): string {
    const insn = this.rev[target - 1]!;
    return insn.code === (BPF_RET | BPF_K) ? `ret:${insn.k}` : `at:${target}`;
  }
}

/** Binary search over intervals[i..j]; returns the label of its first instruction (or leaf). */
function compileTree(a: BackwardAssembler, intervals: readonly Interval[], i: number, j: number): Label {
  if (i === j) return intervals[i]!.label;
  const mid = (i + j + 1) >> 1;
  // The upper half is emitted first so that it lands after the lower half, which the
  // jge then reaches by its (short) false branch.
  const upper = compileTree(a, intervals, mid, j);
  const lower = compileTree(a, intervals, i, mid - 1);
  return a.jump(BPF_JGE, intervals[mid]!.lo, upper, lower);
}

/** A syscall's steps, first match wins; returns the label of the block's first instruction. */
function compileChain(a: BackwardAssembler, chain: readonly Step[], labelOf: (ret: number) => Label): Label {
  let next = labelOf(chain.at(-1)!.ret);
  for (let s = chain.length - 2; s >= 0; s--) {
    const step = chain[s]!;
    const onMatch = labelOf(step.ret);
    if (onMatch === next) continue; // matching or not, the outcome is the same
    let start = onMatch;
    for (let c = step.conds.length - 1; c >= 0; c--) start = compileCond(a, step.conds[c]!, start, next);
    next = start;
  }
  return next;
}

const half = (index: number, high: boolean): number => SECCOMP_DATA_ARGS + index * 8 + (high ? 4 : 0);
const lo32 = (v: bigint): number => Number(v & 0xffffffffn);
const hi32 = (v: bigint): number => Number(v >> 32n);

/** `ld arg-half; [and mask;] jmp op k`, as one straight-line piece. */
function cmpHalf(a: BackwardAssembler, offset: number, mask: number | null, op: number, k: number, ifTrue: Label, ifFalse: Label): Label {
  a.jump(op, k, ifTrue, ifFalse);
  if (mask !== null) a.stmt(BPF_ALU | BPF_AND | BPF_K, mask);
  return a.stmt(BPF_LD | BPF_W | BPF_ABS, offset);
}

/**
 * One 64-bit (or low-32-bit) unsigned comparison, built from 32-bit loads because classic
 * BPF has a 32-bit accumulator. Little-endian layout: the low half of args[i] comes first.
 */
function compileCond(a: BackwardAssembler, c: Cond, ifTrue: Label, ifFalse: Label): Label {
  if (ifTrue === ifFalse) return ifTrue;
  const wide = c.width === 64;
  const lo = half(c.index, false);
  const hi = half(c.index, true);
  switch (c.op) {
    case 'ne':
      return compileCond(a, { ...c, op: 'eq' }, ifFalse, ifTrue);
    case 'lt':
      return compileCond(a, { ...c, op: 'ge' }, ifFalse, ifTrue);
    case 'le':
      return compileCond(a, { ...c, op: 'gt' }, ifFalse, ifTrue);
    case 'eq': {
      const low = cmpHalf(a, lo, null, BPF_JEQ, lo32(c.value), ifTrue, ifFalse);
      return wide ? cmpHalf(a, hi, null, BPF_JEQ, hi32(c.value), low, ifFalse) : low;
    }
    case 'masked_eq': {
      const mask = c.value;
      const want = c.valueTwo;
      if ((want & ~mask) !== 0n) return ifFalse; // bits outside the mask can never match
      const low = lo32(mask) === 0 ? ifTrue : cmpHalf(a, lo, lo32(mask) === 0xffffffff ? null : lo32(mask), BPF_JEQ, lo32(want), ifTrue, ifFalse);
      if (!wide || hi32(mask) === 0) return low;
      return cmpHalf(a, hi, hi32(mask) === 0xffffffff ? null : hi32(mask), BPF_JEQ, hi32(want), low, ifFalse);
    }
    case 'gt':
    case 'ge': {
      const op = c.op === 'gt' ? BPF_JGT : BPF_JGE;
      const low = cmpHalf(a, lo, null, op, lo32(c.value), ifTrue, ifFalse);
      if (!wide) return low;
      // high > k: true; high == k: decided by the low half; high < k: false
      const highEqual = a.jump(BPF_JEQ, hi32(c.value), low, ifFalse);
      a.jump(BPF_JGT, hi32(c.value), ifTrue, highEqual);
      return a.stmt(BPF_LD | BPF_W | BPF_ABS, hi);
    }
  }
}
