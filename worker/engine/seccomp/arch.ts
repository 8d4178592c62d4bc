/** The architectures the compiler targets, and how seccomp names them. */
import { SeccompError } from './errors.js';
import { AARCH64_SYSCALLS, X86_64_SYSCALLS } from './syscalls.js';

export type SeccompArch = 'x86_64' | 'aarch64';

/** seccomp_data.arch values (<linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE). */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_AARCH64 = 0xc00000b7;

/** x32 syscalls arrive with the x86_64 audit arch and this bit set in nr. */
export const X32_SYSCALL_BIT = 0x40000000;

export interface ArchInfo {
  readonly name: SeccompArch;
  readonly auditArch: number;
  readonly syscalls: Readonly<Record<string, number>>;
  /** Whether numbers with X32_SYSCALL_BIT must be refused: the x32 ABI shares x86_64's audit arch. */
  readonly hasX32: boolean;
}

export const ARCHES: Readonly<Record<SeccompArch, ArchInfo>> = Object.freeze({
  x86_64: { name: 'x86_64', auditArch: AUDIT_ARCH_X86_64, syscalls: X86_64_SYSCALLS, hasX32: true },
  aarch64: { name: 'aarch64', auditArch: AUDIT_ARCH_AARCH64, syscalls: AARCH64_SYSCALLS, hasX32: false },
});

/** Maps Node's process.arch to ours. */
export function seccompArchFor(nodeArch: string = process.arch): SeccompArch {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  throw new SeccompError('UNSUPPORTED_ARCH', `seccomp: no syscall table for architecture ${nodeArch}; supported are x64 and arm64`, {
    arch: nodeArch,
  });
}

/** The AUDIT_ARCH_* value the kernel reports in seccomp_data.arch for native syscalls on nodeArch. */
export function auditArchFor(nodeArch: string = process.arch): number {
  return ARCHES[seccompArchFor(nodeArch)].auditArch;
}
