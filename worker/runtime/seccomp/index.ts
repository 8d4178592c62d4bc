/** Seccomp for containers: the default profile and its compiler to a classic-BPF program. */
export { compileSeccomp, decodeProgram, encodeProgram, actionToRet, BPF_MAXINSNS } from './bpf.js';
export { auditArchFor, seccompArchFor, AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64, type SeccompArch } from './arch.js';
export { defaultProfile, ALLOW, KILL_PROCESS, errno } from './profile.js';
export type { SeccompProfile, SeccompRule, SeccompArg, SeccompOp, SeccompAction } from './profile.js';
export { SeccompError, type SeccompErrorCode } from './errors.js';
