/** The JSON shapes the API answers with, kept apart from storage shapes. */
import type { FunctionSpec } from '../common/function-spec.js';
import type { FunctionRecord, FunctionVersion } from '../common/registry.js';

export interface ViewOptions {
  /** Show env values (`?reveal=env`); by default each is null, its name alone shown. */
  revealEnv?: boolean;
}

/**
 * A spec as shown to clients: invoke key digests are replaced by their count, and env
 * values (secrets) by null unless asked for; null rather than a placeholder string, so a
 * spec copied back into a deploy is refused instead of deploying the placeholder.
 */
export function specView(spec: FunctionSpec, opts: ViewOptions = {}) {
  const { invokeKeyDigests, env, ...rest } = spec;
  const shownEnv = opts.revealEnv ? env : Object.fromEntries(Object.keys(env).map((k) => [k, null]));
  return { ...rest, env: shownEnv, invokeKeys: invokeKeyDigests.length };
}

export function functionView(fn: FunctionRecord, opts: ViewOptions = {}) {
  return { name: fn.name, version: fn.version, createdAt: fn.createdAt, updatedAt: fn.updatedAt, spec: specView(fn.spec, opts) };
}

export function versionView(v: FunctionVersion, opts: ViewOptions = {}) {
  return { name: v.name, version: v.version, createdAt: v.createdAt, spec: specView(v.spec, opts) };
}
