/**
 * Seccomp for containers: the default profile and its compiler to the classic-BPF program
 * that the C pre-exec stage installs right before execve.
 */
export * from './bpf.js';
export { ARCHES, auditArchFor, seccompArchFor, AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64, X32_SYSCALL_BIT, type ArchInfo, type SeccompArch } from './arch.js';
export { defaultProfile, ALLOW, KILL_PROCESS, errno, CLONE_NAMESPACE_FLAGS } from './profile.js';
export type { SeccompProfile, SeccompRule, SeccompArg, SeccompOp, SeccompAction } from './profile.js';
export { SeccompError, type SeccompErrorCode } from './errors.js';
