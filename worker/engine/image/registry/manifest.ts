/**
 * Manifests as the registry serves them: which media types faasbox asks for and accepts,
 * what each must hold, and the platform chosen from an index. Pure: bytes in, checked
 * objects out (the caller has already hashed the very bytes given here).
 */
import { arch as hostArch } from 'node:process';
import { ImageInvalidError, ImageNotFoundError } from '../../../../common/errors.js';
import { compressionOf } from '../unpack/index.js';
import type { Platform } from '../pull-types.js';
import type { LayerDescriptor } from '../record.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/**
 * Everything faasbox reads, most preferred first. Registry 2.8 answers 404
 * MANIFEST_UNKNOWN for an OCI manifest to a client that does not list OCI, so all four go.
 */
export const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

/** Manifests and configs are small; a registry sending more is not sending one. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  platform?: Platform & { 'os.version'?: string };
}

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: LayerDescriptor[];
}

export interface IndexManifest {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

function descriptor(d: unknown, where: string): Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (!o || typeof o !== 'object') throw new ImageInvalidError(`${where} is not a descriptor`);
  if (typeof o.digest !== 'string' || !DIGEST.test(o.digest)) throw new ImageInvalidError(`${where}: digest ${JSON.stringify(String(o.digest).slice(0, 80))} is not a sha256 digest`);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) throw new ImageInvalidError(`${where}: size ${JSON.stringify(o.size)} is not a byte count`);
  if (typeof o.mediaType !== 'string') throw new ImageInvalidError(`${where}: it has no mediaType`);
  return o as Descriptor;
}

/**
 * The manifest in bytes, served as contentType. Schema 1 is refused: it has no config and
 * unverifiable layer ids, and registries have not served it to current clients for years.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined, what: string): ImageManifest | IndexManifest {
  let doc: { schemaVersion?: unknown; mediaType?: unknown; config?: unknown; layers?: unknown; manifests?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ImageInvalidError(`the manifest of ${what} is not JSON`);
  }
  const type = (typeof doc.mediaType === 'string' ? doc.mediaType : undefined) ?? contentType?.split(';')[0]?.trim();
  if (doc.schemaVersion === 1 || type === MEDIA.dockerSchema1 || type === MEDIA.dockerSchema1Signed) {
    throw new ImageInvalidError(`${what} is a Docker schema 1 manifest, which faasbox does not pull (it cannot be verified); push it again with a current client (schema 2 or OCI)`, { mediaType: type });
  }
  if (doc.schemaVersion !== 2) throw new ImageInvalidError(`the manifest of ${what} has schemaVersion ${JSON.stringify(doc.schemaVersion)}, not 2`);
  const isIndex = type === MEDIA.ociIndex || type === MEDIA.dockerList || (type === undefined && Array.isArray(doc.manifests));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw new ImageInvalidError(`the index of ${what} has no manifests list`);
    return { kind: 'index', mediaType: type ?? MEDIA.ociIndex, manifests: doc.manifests.map((m, i) => descriptor(m, `${what}: manifests[${i}]`)) };
  }
  if (type !== undefined && type !== MEDIA.ociManifest && type !== MEDIA.dockerManifest) {
    throw new ImageInvalidError(`${what} is a ${JSON.stringify(type)}, not an image manifest or index faasbox knows`, { mediaType: type });
  }
  const config = descriptor(doc.config, `${what}: config`);
  if (config.mediaType !== MEDIA.ociConfig && config.mediaType !== MEDIA.dockerConfig) {
    throw new ImageInvalidError(`${what}: its config is a ${JSON.stringify(config.mediaType)}, not an image config (an artifact, not an image?)`);
  }
  if (!Array.isArray(doc.layers) || doc.layers.length === 0) throw new ImageInvalidError(`${what}: its manifest lists no layers`);
  const layers = doc.layers.map((l, i) => {
    const d = descriptor(l, `${what}: layers[${i}]`);
    if (/nondistributable|foreign/.test(d.mediaType) || (Array.isArray(d.urls) && d.urls.length > 0)) {
      throw new ImageInvalidError(`${what}: layer ${d.digest} is non-distributable (${d.mediaType}): it lives outside the registry, and faasbox pulls only what the registry serves`, { layer: d.digest });
    }
    if (!compressionOf(d.mediaType)) throw new ImageInvalidError(`${what}: layer ${d.digest} has media type ${JSON.stringify(d.mediaType)}, not a tar (plain, gzip or zstd)`, { layer: d.digest });
    return { digest: d.digest, mediaType: d.mediaType, size: d.size };
  });
  return { kind: 'manifest', mediaType: type ?? MEDIA.ociManifest, config, layers };
}

/** This machine's platform as OCI names it (Go's GOARCH, with arm's variant). */
export function hostPlatform(arch: string = hostArch, armVersion: unknown = (process.config.variables as Record<string, unknown>).arm_version): Platform {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };
  const p: Platform = { os: 'linux', architecture: map[arch] ?? arch };
  if (arch === 'arm64') p.variant = 'v8';
  if (arch === 'arm' && armVersion) p.variant = `v${String(armVersion)}`;
  return p;
}

export const formatPlatform = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/** "os/arch[/variant]"; undefined when it is not one. */
export function parsePlatform(text: string): Platform | undefined {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) return undefined;
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2]) p.variant = parts[2];
  return p;
}

/** arm64 without a variant is v8 (as containerd's platform matcher has it). */
const variantOf = (p: Platform): string | undefined => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);

/**
 * The index entry for platform: os and architecture equal, the variant equal when one is
 * wanted (an entry without one is taken when nothing better is there). None is an
 * ImageNotFoundError listing what the index has.
 */
export function choosePlatform(index: IndexManifest, want: Platform, what: string): Descriptor {
  const images = index.manifests.filter((m) => m.mediaType !== MEDIA.ociIndex && m.mediaType !== MEDIA.dockerList);
  const same = images.filter((m) => m.platform && m.platform.os === want.os && m.platform.architecture === want.architecture);
  const wantVariant = variantOf(want);
  const exact = same.find((m) => variantOf(m.platform!) === wantVariant);
  const pick = exact ?? (wantVariant ? same.find((m) => m.platform!.variant === undefined) : same[0]);
  if (pick) return pick;
  const has = images.map((m) => (m.platform ? formatPlatform(m.platform) : '(no platform)')).join(', ') || 'nothing';
  const err = new ImageNotFoundError(what);
  err.message = `image ${what} has no manifest for ${formatPlatform(want)} (its index has: ${has}); --platform picks another`;
  throw err;
}

/** The config's rootfs.diff_ids, one per layer of the manifest. */
export function configDiffIds(bytes: Buffer, layers: number, what: string): { diffIds: string[]; platform?: Platform } {
  let config: { rootfs?: { type?: unknown; diff_ids?: unknown }; os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    config = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ImageInvalidError(`the config of ${what} is not JSON`);
  }
  const ids = config.rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string' && DIGEST.test(d))) throw new ImageInvalidError(`the config of ${what} has no list of sha256 rootfs.diff_ids`);
  if (ids.length !== layers) throw new ImageInvalidError(`the config of ${what} lists ${ids.length} diff_ids for the manifest's ${layers} layers`);
  const out: { diffIds: string[]; platform?: Platform } = { diffIds: ids as string[] };
  if (typeof config.os === 'string' && typeof config.architecture === 'string') {
    out.platform = { os: config.os, architecture: config.architecture };
    if (typeof config.variant === 'string') out.platform.variant = config.variant;
  }
  return out;
}
