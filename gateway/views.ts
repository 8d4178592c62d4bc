/** The JSON shapes the API answers with, kept apart from storage shapes. */
import type { FunctionSpec } from '../common/function-spec.js';
import type { FunctionRecord, FunctionVersion } from '../common/registry.js';

/** A spec as shown to clients: invoke key digests are replaced by their count. */
export function specView(spec: FunctionSpec) {
  const { invokeKeyDigests, ...rest } = spec;
  return { ...rest, invokeKeys: invokeKeyDigests.length };
}

export function functionView(fn: FunctionRecord) {
  return { name: fn.name, version: fn.version, createdAt: fn.createdAt, updatedAt: fn.updatedAt, spec: specView(fn.spec) };
}

export function versionView(v: FunctionVersion) {
  return { name: v.name, version: v.version, createdAt: v.createdAt, spec: specView(v.spec) };
}
