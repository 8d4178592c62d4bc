/**
 * Test support: a classic-BPF interpreter for seccomp filters, written from the kernel's
 * documented semantics (not from our compiler), plus a direct evaluator of a profile's
 * meaning. Tests compare the two: what the program does vs what the profile says.
 */
import type { SeccompAction, SeccompArg, SeccompProfile } from '../profile.js';

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export interface SeccompInput {
  nr: number;
  arch: number;
  args?: readonly (number | bigint)[];
  instructionPointer?: bigint;
}

export type Verdict =
  | { action: 'allow' }
  | { action: 'errno'; errno: number }
  | { action: 'kill_process' }
  | { action: 'kill_thread' }
  | { action: 'trap' }
  | { action: 'log' }
  | { action: 'other'; ret: number };

/** The checks the kernel makes before accepting a seccomp program (bpf_check_classic + seccomp_check_filter). */
export function validate(prog: readonly Insn[]): void {
  if (prog.length === 0 || prog.length > 4096) throw new Error(`program length ${prog.length} outside 1..4096`);
  prog.forEach((insn, pc) => {
    for (const f of ['jt', 'jf'] as const)
      if (!Number.isInteger(insn[f]) || insn[f] < 0 || insn[f] > 255) throw new Error(`pc ${pc}: ${f}=${insn[f]} is not a u8`);
    switch (insn.code) {
      case 0x20: // ld w abs
        if (insn.k % 4 !== 0 || insn.k >= 64) throw new Error(`pc ${pc}: load offset ${insn.k} outside seccomp_data or unaligned`);
        break;
      case 0x54: // alu and k
      case 0x06: // ret k
        break;
      case 0x05: // ja
        if (pc + 1 + insn.k >= prog.length) throw new Error(`pc ${pc}: ja ${insn.k} leaves the program`);
        break;
      case 0x15: // jeq k
      case 0x25: // jgt k
      case 0x35: // jge k
      case 0x45: // jset k
        if (pc + 1 + insn.jt >= prog.length || pc + 1 + insn.jf >= prog.length) throw new Error(`pc ${pc}: conditional jump leaves the program`);
        break;
      default:
        throw new Error(`pc ${pc}: opcode 0x${insn.code.toString(16)} not handled by this interpreter`);
    }
  });
  const last = prog.at(-1)!;
  if (last.code !== 0x06) throw new Error('program does not end in a return');
}

function seccompData(input: SeccompInput): Buffer {
  const buf = Buffer.alloc(64);
  buf.writeUInt32LE(input.nr >>> 0, 0);
  buf.writeUInt32LE(input.arch >>> 0, 4);
  buf.writeBigUInt64LE(input.instructionPointer ?? 0n, 8);
  (input.args ?? []).forEach((a, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i));
  return buf;
}

/** Runs the program on one syscall; returns the raw SECCOMP_RET_* value and the steps taken. */
export function run(prog: readonly Insn[], input: SeccompInput): { ret: number; steps: number } {
  const data = seccompData(input);
  let a = 0;
  let steps = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    steps++;
    switch (code) {
      case 0x20:
        a = data.readUInt32LE(k);
        break;
      case 0x54:
        a = (a & k) >>> 0;
        break;
      case 0x05:
        pc += k;
        break;
      case 0x15:
        pc += a === k >>> 0 ? jt : jf;
        break;
      case 0x25:
        pc += a > k >>> 0 ? jt : jf;
        break;
      case 0x35:
        pc += a >= k >>> 0 ? jt : jf;
        break;
      case 0x45:
        pc += (a & k) !== 0 ? jt : jf;
        break;
      case 0x06:
        return { ret: k >>> 0, steps };
      default:
        throw new Error(`pc ${pc}: opcode 0x${code.toString(16)}`);
    }
  }
  throw new Error('fell off the end of the program');
}

export function verdictOf(ret: number): Verdict {
  const action = (ret & 0xffff0000) >>> 0;
  if (action === 0x7fff0000) return { action: 'allow' };
  if (action === 0x00050000) return { action: 'errno', errno: ret & 0xffff };
  if (action === 0x80000000) return { action: 'kill_process' };
  if (action === 0x00000000) return { action: 'kill_thread' };
  if (action === 0x00030000) return { action: 'trap' };
  if (action === 0x7ffc0000) return { action: 'log' };
  return { action: 'other', ret };
}

export function evaluate(prog: readonly Insn[], input: SeccompInput): Verdict {
  return verdictOf(run(prog, input).ret);
}

export function verdictFor(action: SeccompAction): Verdict {
  return action.kind === 'errno' ? { action: 'errno', errno: action.errno } : { action: action.kind };
}

function argHolds(cond: SeccompArg, raw: bigint): boolean {
  const width = cond.width ?? 64;
  const arg = BigInt.asUintN(width, raw);
  const v = BigInt.asUintN(width, BigInt(cond.value));
  switch (cond.op) {
    case 'eq':
      return arg === v;
    case 'ne':
      return arg !== v;
    case 'lt':
      return arg < v;
    case 'le':
      return arg <= v;
    case 'gt':
      return arg > v;
    case 'ge':
      return arg >= v;
    case 'masked_eq':
      return (arg & v) === BigInt.asUintN(width, BigInt(cond.valueTwo ?? 0));
  }
}

/**
 * What the profile means for a syscall by name (undefined: a number without a name), with
 * first-match-wins rule order. Arch checks and the x32 range are the tests' own business.
 */
export function expectedVerdict(profile: SeccompProfile, name: string | undefined, args: readonly (number | bigint)[] = []): Verdict {
  if (name !== undefined)
    for (const rule of profile.rules) {
      if (!rule.names.includes(name)) continue;
      if ((rule.args ?? []).every((c) => argHolds(c, BigInt.asUintN(64, BigInt(args[c.index] ?? 0))))) return verdictFor(rule.action);
    }
  return verdictFor(profile.defaultAction);
}
