/**
 * The deploy body (PUT /v1/functions/:name) and the one normalized FunctionSpec it becomes.
 *
 * The schema runs once, at the edge. Everything downstream (registry, queue, scheduler,
 * worker, container config) receives the FunctionSpec unchanged and trusts it: defaults are
 * filled, CPU is derived, the code is replaced by a reference to its content-addressed
 * blob, invoke keys by their digests. Nothing downstream re-validates or re-defaults.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { sniffFormat } from './archive/index.js';
import { asyncConfigSchema, type AsyncConfig } from './delivery-spec.js';
import { PayloadTooLargeError, ValidationError } from './errors.js';
import { parseWith } from './validation.js';
import { isolationFields, isolationOf, type IoSpec } from './isolation-spec.js';
import { networkSchema, type FunctionNetwork } from './network-spec.js';

export const RUNTIMES = ['nodejs20', 'python3'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export const FUNCTION_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

export const LIMITS = {
  memoryMb: { min: 64, max: 4096, default: 128 },
  cpuMillicores: { min: 10, max: 16_000 },
  timeoutMs: { min: 1, max: 900_000, default: 30_000 },
  /** The container's pids cgroup limit: its processes and threads together (a Node.js runtime starts ~11 threads). */
  pidsLimit: { min: 16, max: 4096, default: 64 },
  /** The container's disk quota: the tmpfs under its writable layer, charged to the host's memory. */
  diskMb: { min: 16, max: 2048, default: 64 },
  concurrency: { min: 1, max: 10_000 },
  /** Lambda's rule: the whole environment at most 4 KiB. */
  envBytes: 4096,
  invokeKeys: 16,
  defaultCodeBytes: 10 * 1024 * 1024,
} as const;

/**
 * How long a function's module may take to load (its top level) before its container is
 * killed: its timeoutMs, but never less than INIT_TIMEOUT_MS, as Lambda gives every
 * function's init phase 10 s whatever its timeout. A function with a 1 s timeout and 3 s
 * of imports still gets warm; a top level that never finishes is still stopped.
 */
export const INIT_TIMEOUT_MS = 10_000;

export function loadTimeoutMs(spec: { timeoutMs: number }): number {
  return Math.max(spec.timeoutMs, INIT_TIMEOUT_MS);
}

/** The longest a started invocation can take at the worker: its load, then its run. */
export function startedBudgetMs(spec: { timeoutMs: number }): number {
  return loadTimeoutMs(spec) + spec.timeoutMs;
}

/** Lambda's allocation: 1769 MB buys one full vCPU, and CPU scales linearly with memory. */
export const MB_PER_VCPU = 1769;

export function cpuForMemory(memoryMb: number): number {
  return Math.max(LIMITS.cpuMillicores.min, Math.round((memoryMb * 1000) / MB_PER_VCPU));
}

/** Default entry file of a single-file function, per runtime. */
export const DEFAULT_ENTRY: Record<Runtime, string> = {
  nodejs20: 'index.mjs',
  python3: 'handler.py',
};

/** Default handler name, per runtime: the module's default export, or Lambda's `handler` function. */
export const DEFAULT_HANDLER: Record<Runtime, string> = {
  nodejs20: 'default',
  python3: 'handler',
};

/** Names the platform sets itself inside the container; a function may not override them. */
const RESERVED_ENV_PREFIXES = ['FAASBOX_', 'NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'PYTHONPATH', 'PYTHONHOME', 'LD_'];
const ENV_KEY = /^[A-Za-z][A-Za-z0-9_]*$/;
/**
 * The one rule for an entry path, which both the deploy schema and the worker's code store
 * apply: components of letters, digits, ".", "_" and "-" joined by single slashes, none of
 * them "." or "..", 255 bytes at most. So a nested entry (lib/handler.mjs) is fine, for a
 * single file as for a package, and is written exactly where the runtime will look.
 */
const ENTRY_PATH = /^(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const ENTRY_MAX_BYTES = 255;

export const ENTRY_RULE = 'entry must be a relative path inside the package (a/b.mjs), without "." or ".." segments, 255 bytes at most';

export function isEntryPath(entry: string): boolean {
  return entry.length <= ENTRY_MAX_BYTES && ENTRY_PATH.test(entry);
}

/** The entry's path components; throws on anything the rule refuses (a spec read back from Redis is checked again). */
export function entryParts(entry: string): string[] {
  if (!isEntryPath(entry)) throw new Error(ENTRY_RULE);
  return entry.split('/');
}
const HANDLER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export const functionNameSchema = z
  .string()
  .regex(FUNCTION_NAME_PATTERN, 'function names are 1-63 characters: a lowercase letter, then lowercase letters, digits or "-"');

const envSchema = z
  .record(
    z
      .string()
      .regex(ENV_KEY, 'environment variable names start with a letter and contain only letters, digits and "_"')
      .refine((k) => !RESERVED_ENV_PREFIXES.some((p) => k.toUpperCase().startsWith(p)), {
        message: `this environment variable name is reserved for the platform (reserved: names starting with ${RESERVED_ENV_PREFIXES.join(', ')})`,
      }),
    z.string(),
  )
  .refine(
    (env) => Object.entries(env).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0) <= LIMITS.envBytes,
    { message: `environment variables exceed ${LIMITS.envBytes} bytes in total` },
  );

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** The JSON body of PUT /v1/functions/:name, exactly as a client sends it. */
export const deployRequestSchema = z
  .strictObject({
    runtime: z.enum(RUNTIMES),
    code: z.string().min(1).optional(),
    package: z.base64('package must be base64 (of a tar.gz or zip archive)').min(1).optional(),
    entry: z.string().refine(isEntryPath, ENTRY_RULE).optional(),
    handler: z.string().regex(HANDLER, 'handler must be the name of an exported function').optional(),
    env: envSchema.default({}),
    memoryMb: int(LIMITS.memoryMb.min, LIMITS.memoryMb.max).default(LIMITS.memoryMb.default),
    cpu: int(LIMITS.cpuMillicores.min, LIMITS.cpuMillicores.max).optional(),
    timeoutMs: int(LIMITS.timeoutMs.min, LIMITS.timeoutMs.max).default(LIMITS.timeoutMs.default),
    pidsLimit: int(LIMITS.pidsLimit.min, LIMITS.pidsLimit.max).optional(),
    diskMb: int(LIMITS.diskMb.min, LIMITS.diskMb.max).optional(),
    concurrency: int(LIMITS.concurrency.min, LIMITS.concurrency.max).optional(),
    isolation: z.enum(['reuse', 'fresh']).default('reuse'),
    public: z.boolean().default(false),
    invokeKeys: z.array(z.string().min(16).max(256)).max(LIMITS.invokeKeys).optional(),
    ...isolationFields,
    network: networkSchema.optional(),
    async: asyncConfigSchema.optional(),
  })
  .superRefine((body, ctx) => {
    const has = (body.code !== undefined ? 1 : 0) + (body.package !== undefined ? 1 : 0);
    if (has !== 1) {
      ctx.addIssue({ code: 'custom', path: has === 0 ? ['code'] : ['package'], message: 'give exactly one of "code" or "package"' });
    }
    if (body.package !== undefined && body.entry === undefined) {
      ctx.addIssue({ code: 'custom', path: ['entry'], message: 'a package needs an "entry" (the file that holds the handler)' });
    }
  });

export type DeployRequest = z.input<typeof deployRequestSchema>;

/** What a deploy may send; the reader (common/archive) also knows plain tar, for image layers. */
export type PackageFormat = 'tar.gz' | 'zip';

/** Where the function's code lives: a blob in the registry, addressed by its sha256. */
export type CodeRef =
  | { kind: 'file'; entry: string; digest: string; size: number }
  | { kind: 'package'; format: PackageFormat; entry: string; digest: string; size: number };

export interface FunctionSpec {
  name: string;
  runtime: Runtime;
  code: CodeRef;
  /** Name of the exported function to call. */
  handler: string;
  env: Record<string, string>;
  memoryMb: number;
  /** Millicores; derived from memoryMb (MB_PER_VCPU) when the deploy gave none. */
  cpu: number;
  timeoutMs: number;
  /**
   * pids and disk limits, present only when the deploy gave them (so a version deployed
   * before they existed keeps its id); the worker's specconv applies LIMITS' defaults.
   */
  pidsLimit?: number;
  diskMb?: number;
  /** Maximum concurrent invocations of this function; null means bounded only by capacity. */
  concurrency: number | null;
  /** 'reuse': a container serves many invocations; 'fresh': one container per invocation. */
  isolation: 'reuse' | 'fresh';
  /** Invocable without any API key. */
  public: boolean;
  /** sha256 (hex) of each per-function invoke key; the keys themselves are never stored. */
  invokeKeyDigests: string[];
  /** Block I/O limits (common/isolation-spec.ts); absent: none. */
  io?: IoSpec;
  /** A user namespace of its own for each of its containers; absent: the worker's default. */
  userns?: boolean;
  /** Only when the deploy gave one (absent: mode none, and versions stay as before). */
  network?: FunctionNetwork;
  /** Retries, destinations and queue bound of async invocations; only present when the deploy gave it, so older version ids stay. */
  async?: AsyncConfig;
}

export interface ParsedDeploy {
  spec: FunctionSpec;
  /** The code bytes: the source file, or the archive. Stored once, by spec.code.digest. */
  code: Buffer;
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function packageFormat(bytes: Buffer): PackageFormat | undefined {
  const format = sniffFormat(bytes);
  return format === 'tar.gz' || format === 'zip' ? format : undefined;
}

export interface ParseDeployOptions {
  maxCodeBytes?: number;
}

/** Validate a deploy body for function `name` and normalize it into the FunctionSpec. */
export function parseDeploy(name: string, body: unknown, options: ParseDeployOptions = {}): ParsedDeploy {
  parseWith(functionNameSchema, name, 'function name');
  const req = parseWith(deployRequestSchema, body, 'function spec');
  const maxCodeBytes = options.maxCodeBytes ?? LIMITS.defaultCodeBytes;

  let code: Buffer;
  let ref: CodeRef;
  if (req.package !== undefined) {
    code = Buffer.from(req.package, 'base64');
    const format = packageFormat(code);
    if (format === undefined) {
      throw new ValidationError('invalid function spec: package: not a tar.gz or zip archive', [
        { path: 'package', message: 'not a tar.gz or zip archive (checked by magic bytes)' },
      ]);
    }
    ref = { kind: 'package', format, entry: req.entry as string, digest: sha256Hex(code), size: code.length };
  } else {
    code = Buffer.from(req.code as string, 'utf8');
    ref = { kind: 'file', entry: req.entry ?? DEFAULT_ENTRY[req.runtime], digest: sha256Hex(code), size: code.length };
  }
  if (code.length > maxCodeBytes) throw new PayloadTooLargeError(maxCodeBytes);

  const spec: FunctionSpec = {
    name,
    runtime: req.runtime,
    code: ref,
    handler: req.handler ?? DEFAULT_HANDLER[req.runtime],
    env: req.env,
    memoryMb: req.memoryMb,
    cpu: req.cpu ?? cpuForMemory(req.memoryMb),
    timeoutMs: req.timeoutMs,
    ...(req.pidsLimit !== undefined ? { pidsLimit: req.pidsLimit } : {}),
    ...(req.diskMb !== undefined ? { diskMb: req.diskMb } : {}),
    concurrency: req.concurrency ?? null,
    isolation: req.isolation,
    public: req.public,
    invokeKeyDigests: [...new Set((req.invokeKeys ?? []).map((k) => sha256Hex(k)))].sort(),
    ...isolationOf(req),
    ...(req.network ? { network: req.network } : {}),
    ...(req.async ? { async: req.async } : {}),
  };
  return { spec, code };
}

/** JSON with object keys sorted at every level, so equal specs hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

/**
 * The immutable version id: a sha256 over the spec, which already names the code by its
 * digest, so code and config together decide it. Identical deploys give identical ids.
 */
export function versionOf(spec: FunctionSpec): string {
  return `sha256:${sha256Hex(canonicalJson(spec))}`;
}
