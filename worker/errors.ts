/**
 * The worker's one table from internal failures to public error codes: the worker's
 * counterpart of gateway/errors.ts (which maps public codes to HTTP statuses).
 *
 * Every failure family the worker meets (the engine's, cgroups', syscalls', seccomp's,
 * the pool's, a runtime instance's, an archive's) is named here by its own code, and
 * PUBLIC_CODE gives each one the code its caller sees. The table is a
 * Record over the union of those codes, so a code added to any family and not mapped
 * here is a compile error. Errors that already carry a public code (FaasboxError:
 * FUNCTION_NOT_FOUND, CODE_UNPACK_FAILED, SECRET_KEY_INVALID, ...) pass through as they are.
 */
import { ArchiveError } from '../common/archive/index.js';
import { FaasboxError, type ErrorCode, type ErrorInfo } from '../common/errors.js';
import { CgroupError, type CgroupErrorCode } from './engine/cgroups/errors.js';
import { EngineError, type EngineErrorCode } from './engine/errors.js';
import { SeccompError, type SeccompErrorCode } from './engine/seccomp/errors.js';
import { SyscallError } from './engine/sys/errors.js';
import { InstanceError, type InvokeFailure } from './instance/instance.js';
import { MalformedHttpAnswer } from './instance/http-answer.js';
import { NoCapacityError } from './pool/pool.js';

/** Every internal failure the worker can name, by family. */
export type InternalFailure =
  | InstanceError['code']
  | InvokeFailure
  | EngineErrorCode
  | CgroupErrorCode
  | SeccompErrorCode
  | SyscallError['code']
  | NoCapacityError['code']
  | 'ARCHIVE_INVALID'
  | 'MALFORMED_HTTP_ANSWER';

export const PUBLIC_CODE = {
  // A runtime instance's outcomes (instance.ts).
  FUNCTION_ERROR: 'FUNCTION_ERROR',
  // The function's own module failed to load: its error, reported as the function's.
  LOAD_FAILED: 'FUNCTION_ERROR',
  TIMEOUT: 'TIMEOUT',
  OOM_KILLED: 'OOM_KILLED',
  RESULT_TOO_LARGE: 'RESULT_TOO_LARGE',
  RUNTIME_CRASHED: 'RUNTIME_CRASHED',
  BOOT_FAILED: 'RUNTIME_CRASHED',
  // An answer of the function's that is not a valid HTTP answer is its own fault.
  MALFORMED_HTTP_ANSWER: 'FUNCTION_ERROR',
  // The pool: every container busy and the memory budget spent.
  NO_CAPACITY: 'NO_CAPACITY',
  // The engine, its cgroups, syscalls and seccomp: the container could not be made or
  // run. The caller's function is not at fault, and retrying on a fresh container may help.
  INVALID_SPEC: 'RUNTIME_CRASHED',
  CONTAINER_NOT_FOUND: 'RUNTIME_CRASHED',
  CONTAINER_EXISTS: 'RUNTIME_CRASHED',
  INVALID_STATE: 'RUNTIME_CRASHED',
  CREATE_FAILED: 'RUNTIME_CRASHED',
  EXEC_FAILED: 'RUNTIME_CRASHED',
  INIT_BINARY_MISSING: 'RUNTIME_CRASHED',
  CGROUP_EXISTS: 'RUNTIME_CRASHED',
  CGROUP_NOT_FOUND: 'RUNTIME_CRASHED',
  CGROUP_IO: 'RUNTIME_CRASHED',
  CGROUP_BUSY: 'RUNTIME_CRASHED',
  CGROUP_INVALID_NAME: 'RUNTIME_CRASHED',
  CGROUP_INVALID_LIMIT: 'RUNTIME_CRASHED',
  CGROUP_UNSUPPORTED: 'RUNTIME_CRASHED',
  SYSCALL_FAILED: 'RUNTIME_CRASHED',
  INVALID_PROFILE: 'RUNTIME_CRASHED',
  UNKNOWN_SYSCALL: 'RUNTIME_CRASHED',
  UNSUPPORTED_ARCH: 'RUNTIME_CRASHED',
  PROGRAM_TOO_LONG: 'RUNTIME_CRASHED',
  // userns mode on a kernel without idmapped mounts where it needs them: the message names the feature.
  USERNS_UNSUPPORTED: 'RUNTIME_CRASHED',
  // Bridge mode on a worker without it (no FAASBOX_NET_SUBNET, or a kernel without veth,
  // bridge or nftables): the message says which. No address left is capacity, as memory is.
  NETWORK_UNAVAILABLE: 'RUNTIME_CRASHED',
  ADDRESSES_EXHAUSTED: 'NO_CAPACITY',
  // A version's code that does not unpack (code.ts wraps these in CodeUnpackFailedError; a bare one means the same).
  ARCHIVE_INVALID: 'CODE_UNPACK_FAILED',
} as const satisfies Record<InternalFailure, ErrorCode>;

/** The internal failure an error is, or undefined for one of no family the worker knows. */
export function failureOf(err: unknown): InternalFailure | undefined {
  if (err instanceof InstanceError || err instanceof EngineError || err instanceof CgroupError || err instanceof SeccompError) return err.code;
  if (err instanceof SyscallError || err instanceof NoCapacityError) return err.code;
  if (err instanceof ArchiveError) return 'ARCHIVE_INVALID';
  if (err instanceof MalformedHttpAnswer) return 'MALFORMED_HTTP_ANSWER';
  return undefined;
}

/** The public form of an error the worker knows; undefined for any other (a Redis error, a bug). */
export function knownPublicError(err: unknown): ErrorInfo | undefined {
  if (err instanceof FaasboxError) return err.toInfo();
  const kind = failureOf(err);
  return kind === undefined ? undefined : { code: PUBLIC_CODE[kind], message: (err as Error).message };
}

/** The public form of any error: one the worker does not know is `unknownAs` (INTERNAL unless the caller knows better). */
export function publicError(err: unknown, unknownAs: ErrorCode = 'INTERNAL'): ErrorInfo {
  return knownPublicError(err) ?? { code: unknownAs, message: err instanceof Error ? err.message : String(err) };
}
