/**
 * The puller's contract (pull.ts implements it; the CLI, the worker's image requests and
 * `ctr run --pull` call it), kept apart so callers and the implementation meet on types
 * alone.
 */
import type { LayerBounds } from './layers.js';
import type { ImageRecord } from './record.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistrySettings {
  /** Registries (host[:port]) spoken to over plain HTTP; 127.0.0.1 and localhost always are, as Docker does. */
  insecure?: string[];
  /** An extra CA bundle (PEM) trusted beside the system's. */
  caFile?: string;
  /** The directory of a Docker-style config.json (default $DOCKER_CONFIG or ~/.docker). */
  dockerConfigDir?: string;
}

export interface PullProgress {
  phase: 'resolving' | 'downloading' | 'unpacking' | 'done';
  /** The layer (its blob digest) this event is about, when it is about one. */
  layer?: string;
  layerDone?: number;
  layerTotal?: number;
  /** Bytes of all blobs to fetch: done so far and in all (blobs the store had count as done). */
  doneBytes: number;
  totalBytes: number;
}

export interface PullOptions {
  creds?: RegistryCredentials;
  /** Default: the host's (os linux, its architecture and variant). */
  platform?: Platform;
  registries?: RegistrySettings;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  /** Retries of a failing request or a cut-off transfer, with backoff (default 4). */
  retries?: number;
  /** A request with no byte for this long fails, and is retried (default 30 s). */
  timeoutMs?: number;
  /** Per-layer unpack bounds (default layers.ts DEFAULT_LAYER_BOUNDS). */
  bounds?: LayerBounds;
}

export interface PullResult {
  /** The reference as given, normalised (host/path/name:tag[@digest]). */
  ref: string;
  manifestDigest: string;
  record: ImageRecord;
  /** Bytes actually fetched from the registry (blobs the store already had are not). */
  transferredBytes: number;
}

/** Pulls `ref` into the image store at `imagesDir`, verified and unpacked; tags it. */
export type PullImage = (imagesDir: string, ref: string, opts?: PullOptions) => Promise<PullResult>;
