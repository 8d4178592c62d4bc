/**
 * An image reference, `host[:port]/path/name[:tag][@sha256:<hex>]`, parsed by Docker's
 * rules (distribution's reference grammar):
 *
 *   - the first component is the registry host when it has a '.' or a ':' or is
 *     `localhost` (an IPv6 literal is written in brackets, `[::1]:5000`);
 *   - path components are lower case: `[a-z0-9]+` joined by `.`, `_`, `__` or `-`s;
 *   - a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is `sha256:` and 64 hex digits;
 *   - a pinned digest wins over the tag (the tag is then only a label: it is not what is
 *     fetched, and the puller does not point it at the image).
 *
 * No default registry: a reference without a host (`alpine`, `library/alpine`) is refused,
 * not mapped to docker.io, since a faasbox worker pulls from the registries its operator
 * names and a silent default would send the pull (and credentials) somewhere else. Docker
 * Hub is written out (`docker.io/library/alpine`); its API host is registry-1.docker.io.
 */
import { ValidationError } from '../../../../common/errors.js';

export interface ImageReference {
  /** host[:port] as written (the key of a Docker config's `auths`, and of the tags file). */
  registry: string;
  /** path/name, lower case. */
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOST = /^(?:(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
/** distribution's limit on the whole name (host and path). */
const MAX_NAME = 255;

function invalid(ref: string, why: string): ValidationError {
  return new ValidationError(`image reference ${JSON.stringify(ref.slice(0, 300))}: ${why}`, [{ path: 'ref', message: why }]);
}

/** Whether Docker reads the first component as a host rather than as a path component. */
export function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

export function parseReference(ref: string): ImageReference {
  if (typeof ref !== 'string' || ref === '') throw invalid(String(ref), 'is empty');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(ref, `the digest "${digest.slice(0, 80)}" is not sha256: and 64 lower-case hex digits`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `the tag "${tag.slice(0, 130)}" is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  const parts = rest.split('/');
  if (parts.length < 2 || !looksLikeHost(parts[0]!)) {
    throw invalid(ref, `it names no registry host; faasbox has no default registry: write the host, e.g. docker.io/library/${rest || 'NAME'} or 127.0.0.1:5000/${rest || 'NAME'}`);
  }
  const registry = parts[0]!;
  if (!HOST.test(registry)) throw invalid(ref, `"${registry}" is not a valid registry host[:port]`);
  const path = parts.slice(1);
  for (const c of path) {
    if (c !== c.toLowerCase() && COMPONENT.test(c.toLowerCase())) throw invalid(ref, `the repository must be lower case ("${c}")`);
    if (!COMPONENT.test(c)) throw invalid(ref, `"${c}" is not a valid path component (lower-case letters and digits, joined by . _ __ or -)`);
  }
  if (rest.length > MAX_NAME) throw invalid(ref, `the name is longer than ${MAX_NAME} characters`);
  const out: ImageReference = { registry, repository: path.join('/') };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  // Docker Hub's official images live under library/ (docker.io/alpine is docker.io/library/alpine).
  if ((registry === 'docker.io' || registry === 'index.docker.io') && path.length === 1) out.repository = `library/${out.repository}`;
  return out;
}

/** What is fetched: the pinned digest, else the tag, else "latest". */
export const referenceTarget = (r: ImageReference): string => r.digest ?? r.tag ?? 'latest';

/** The normalised text: host/path/name:tag[@digest] (":latest" only when nothing is pinned). */
export function formatReference(r: ImageReference): string {
  const name = `${r.registry}/${r.repository}`;
  if (r.digest) return `${name}${r.tag ? `:${r.tag}` : ''}@${r.digest}`;
  return `${name}:${r.tag ?? 'latest'}`;
}

/** The host the API is spoken to (Docker Hub's differs from its name). */
export function apiHost(registry: string): string {
  return registry === 'docker.io' || registry === 'index.docker.io' ? 'registry-1.docker.io' : registry;
}
