/**
 * What the pool needs to know of a function version to give it a container: built from
 * the version's spec and the directory its code is unpacked in, here and nowhere else.
 */
import { loadTimeoutMs } from '../common/function-spec.js';
import { versionKey } from '../common/keys.js';
import type { FunctionVersion } from '../common/registry.js';
import type { FunctionTarget } from './pool/pool.js';

export function functionTarget(v: FunctionVersion, codeDir: string): FunctionTarget {
  const spec = v.spec;
  return {
    key: versionKey(v.name, v.version),
    name: spec.name,
    runtime: spec.runtime,
    memoryMb: spec.memoryMb,
    cpus: spec.cpu / 1000,
    isolation: spec.isolation,
    codeDir,
    entry: spec.code.entry,
    handler: spec.handler,
    env: spec.env,
    loadTimeoutMs: loadTimeoutMs(spec),
  };
}
