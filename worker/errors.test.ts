import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArchiveError } from '../common/archive/index.js';
import { CodeUnpackFailedError, ERROR_CODES, FunctionNotFoundError, SecretKeyError } from '../common/errors.js';
import { CgroupError } from './engine/cgroups/errors.js';
import { EngineError, InvalidSpecError } from './engine/errors.js';
import { SeccompError } from './engine/seccomp/errors.js';
import { SyscallError } from './engine/sys/errors.js';
import { InstanceError } from './instance/instance.js';
import { MalformedHttpAnswer } from './instance/http-answer.js';
import { NoCapacityError } from './pool/pool.js';
import { failureOf, knownPublicError, PUBLIC_CODE, publicError } from './errors.js';

test('every internal failure maps to a public error code', () => {
  for (const [kind, code] of Object.entries(PUBLIC_CODE)) assert.ok(ERROR_CODES.includes(code), `${kind} -> ${code}`);
});

test('each family of internal errors is named and mapped', () => {
  const cases: [Error, string][] = [
    [new NoCapacityError(128, 256), 'NO_CAPACITY'],
    [new EngineError('CREATE_FAILED', 'clone failed'), 'RUNTIME_CRASHED'],
    [new InvalidSpecError('memory', 'is negative'), 'RUNTIME_CRASHED'],
    [new CgroupError('CGROUP_IO', '/sys/fs/cgroup/x', 'write failed'), 'RUNTIME_CRASHED'],
    [new SyscallError('mount', 1, '/x'), 'RUNTIME_CRASHED'],
    [new SeccompError('UNKNOWN_SYSCALL', 'no such syscall'), 'RUNTIME_CRASHED'],
    [new InstanceError('LOAD_FAILED', 'SyntaxError'), 'FUNCTION_ERROR'],
    [new InstanceError('BOOT_FAILED', 'runtime did not start'), 'RUNTIME_CRASHED'],
    [new InstanceError('TIMEOUT', 'too slow'), 'TIMEOUT'],
    [new InstanceError('OOM_KILLED', 'too big'), 'OOM_KILLED'],
    [new InstanceError('RESULT_TOO_LARGE', 'too long'), 'RESULT_TOO_LARGE'],
    [new ArchiveError('bad file name', 'lib/../x'), 'CODE_UNPACK_FAILED'],
    [new MalformedHttpAnswer('status is not a number'), 'FUNCTION_ERROR'],
  ];
  for (const [err, code] of cases) {
    assert.ok(failureOf(err), `${err.name} is named`);
    assert.deepEqual(knownPublicError(err), { code, message: err.message }, err.name);
  }
});

test('errors that carry a public code pass through with their details', () => {
  assert.equal(knownPublicError(new FunctionNotFoundError('f'))?.code, 'FUNCTION_NOT_FOUND');
  assert.deepEqual(knownPublicError(new CodeUnpackFailedError('a'.repeat(64), 'disk full'))?.details, { digest: 'a'.repeat(64) });
  assert.equal(knownPublicError(new SecretKeyError('wrong key'))?.code, 'SECRET_KEY_INVALID');
});

test('an error of no known family is not guessed at', () => {
  const redisDown = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  assert.equal(failureOf(redisDown), undefined);
  assert.equal(knownPublicError(redisDown), undefined);
  // A code-shaped property alone does not make an error one of ours.
  assert.equal(knownPublicError(Object.assign(new Error('x'), { code: 'TIMEOUT' })), undefined);
  assert.deepEqual(publicError(redisDown), { code: 'INTERNAL', message: 'connect ECONNREFUSED' });
  assert.equal(publicError(redisDown, 'RUNTIME_CRASHED').code, 'RUNTIME_CRASHED');
});
