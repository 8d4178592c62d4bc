/**
 * A FunctionSpec as Redis holds it: a non-empty env only as `envSealed` (secrets.ts),
 * never in clear. The registry converts at its one boundary, each way; an env-less spec
 * is stored as it is and needs no key.
 */
import { SecretKeyError } from './errors.js';
import type { FunctionSpec } from './function-spec.js';
import type { SecretBox } from './secrets.js';

export type StoredSpec = Omit<FunctionSpec, 'env'> & { env?: Record<string, string>; envSealed?: string };

function need(box: SecretBox | undefined, name: string): SecretBox {
  if (!box) throw new SecretKeyError(`function ${JSON.stringify(name)} has env values, which are stored encrypted, and this service has no secret key: set FAASBOX_SECRET_KEY (the same for every service)`);
  return box;
}

export function sealSpec(box: SecretBox | undefined, spec: FunctionSpec): StoredSpec {
  const { env, ...rest } = spec;
  if (Object.keys(env).length === 0) return spec;
  // The function's name is the associated data: a sealed env copied onto another function does not open.
  return { ...rest, envSealed: need(box, spec.name).seal(JSON.stringify(env), spec.name) };
}

/**
 * What a version id is computed over: the spec with each env value replaced by its keyed
 * digest. The id is shown to whoever may invoke (X-Function-Version), and a plain sha256
 * over the values would let a weak secret be guessed offline; keyed, equal specs still
 * get equal ids under one key.
 */
export function versionedSpec(box: SecretBox | undefined, spec: FunctionSpec): FunctionSpec {
  const names = Object.keys(spec.env);
  if (names.length === 0) return spec;
  const b = need(box, spec.name);
  return { ...spec, env: Object.fromEntries(names.map((k) => [k, `hmac-sha256:${b.digest(`${spec.name}\0${k}\0${spec.env[k]}`)}`])) };
}

/** The spec with its env opened; a plain `env` (stored before sealing existed) is read as it is. */
export function openSpec(box: SecretBox | undefined, stored: StoredSpec): FunctionSpec {
  const { envSealed, env, ...rest } = stored;
  if (envSealed === undefined) return { ...rest, env: env ?? {} };
  return { ...rest, env: JSON.parse(need(box, stored.name).open(envSealed, stored.name)) as Record<string, string> };
}
