/**
 * The function versions this worker knows: a cache of the registry's immutable version
 * records, the code layers they need, and the deploy/delete announcements that keep both
 * current.
 *
 * Versions are immutable, so a cached one never goes stale; a deleted function's are
 * forgotten, so that jobs still queued for it end as FUNCTION_NOT_FOUND (queue.ts, rule 2),
 * and its code layers go once no function uses the code and no invocation holds it.
 */
import type { Redis } from 'ioredis';
import { FunctionNotFoundError, VersionNotFoundError } from '../common/errors.js';
import { versionKey } from '../common/keys.js';
import { parseFunctionEvent, type FunctionEvent, type FunctionRegistry, type FunctionVersion } from '../common/registry.js';
import type { CodeStore } from './instance/code.js';
import type { FunctionTarget } from './pool/pool.js';
import { functionTarget } from './instance/specconv.js';

type VersionRef = { function: string; version: string };

export interface VersionEvents {
  /** A function was deleted: its containers and its name in metrics go; then dropLayers(digests). */
  deleted(name: string, digests: (string | undefined)[]): void;
  /** A function's latest version changed: the containers of the previous one go. */
  replaced(name: string): void;
  /** A version was deployed and pre-pulled: the pool may make ahead what its first invocation needs. */
  deployed?(target: FunctionTarget): void;
}

export class FunctionVersions {
  private readonly cache = new Map<string, FunctionVersion>();

  constructor(
    private readonly registry: FunctionRegistry,
    private readonly code: CodeStore,
    private readonly log: (line: string) => void,
  ) {}

  /** The version record if this worker holds it already (never a registry read). */
  cached(ref: VersionRef): FunctionVersion | undefined {
    return this.cache.get(versionKey(ref.function, ref.version));
  }

  /** The version record, from the cache or the registry (FUNCTION_NOT_FOUND / VERSION_NOT_FOUND when it is gone). */
  async get(ref: VersionRef): Promise<FunctionVersion> {
    const key = versionKey(ref.function, ref.version);
    let v = this.cache.get(key);
    if (!v) {
      v = await this.registry.getVersion(ref.function, ref.version);
      this.cache.set(key, v);
    }
    return v;
  }

  /** Whether the version is still known here: false once its function was deleted. */
  has(key: string): boolean {
    return this.cache.has(key);
  }

  /** Throws FUNCTION_NOT_FOUND when the target's function was deleted since it was looked up. */
  assertLive(t: Pick<FunctionTarget, 'key' | 'name'>): void {
    if (!this.cache.has(t.key)) throw new FunctionNotFoundError(t.name);
  }

  /** The pool's target for the version, its code fetched and unpacked first if this worker lacks it. */
  async target(ref: VersionRef): Promise<{ version: FunctionVersion; target: FunctionTarget }> {
    const version = await this.get(ref);
    const spec = version.spec;
    const codeDir = this.code.has(spec.code.digest)
      ? this.code.dirFor(spec.code.digest)
      : await this.code.materialize({
          digest: spec.code.digest,
          format: spec.code.kind === 'file' ? 'file' : spec.code.format,
          bytes: await this.registry.getCode(spec.code.digest),
          filename: spec.code.entry,
        });
    return { version, target: functionTarget(version, codeDir) };
  }

  /** Removes the layers of code no function uses any more; an invocation holding one defers it (CodeStore.pin). */
  async dropLayers(digests: (string | undefined)[]): Promise<void> {
    const inUse = new Set([...this.cache.values()].map((v) => v.spec.code.digest));
    for (const d of new Set(digests)) {
      if (!d || inUse.has(d)) continue;
      try {
        if (!(await this.registry.hasCode(d))) await this.code.discard(d);
      } catch (err) {
        this.log(`removing code layer ${d}: ${(err as Error).message}`);
      }
    }
  }

  /** Layers of code deleted while no worker of this state dir listened go at start. */
  sweep(): void {
    this.code.sweep((d) => this.registry.hasCode(d)).catch((err: Error) => this.log(`sweeping code layers: ${err.message}`));
  }

  /** Follows the registry's announcements on `sub` (a connection of its own: it is put in subscriber mode). */
  async listen(sub: Redis, on: VersionEvents): Promise<void> {
    await sub.subscribe(this.registry.eventsChannel);
    sub.on('message', (_channel: string, message: string) => {
      const ev = parseFunctionEvent(message);
      if (ev) this.onEvent(ev, on);
    });
  }

  private onEvent(ev: FunctionEvent, on: VersionEvents): void {
    if (ev.type === 'deleted') {
      const digests = ev.versions.map((v) => this.cache.get(versionKey(ev.name, v))?.spec.code.digest);
      for (const v of ev.versions) this.cache.delete(versionKey(ev.name, v));
      on.deleted(ev.name, digests);
      return;
    }
    // A replaced function's warm containers go; its versions stay cached (immutable).
    if (ev.previous && ev.previous !== ev.version) on.replaced(ev.name);
    // Pre-pull: the new version's spec and code layer are fetched and unpacked now, in the
    // background, so that its first invocation here does not wait for them.
    this.target({ function: ev.name, version: ev.version }).then(({ target }) => on.deployed?.(target), (err: Error) => {
      // Deleted again meanwhile: nothing to pull.
      if (!(err instanceof FunctionNotFoundError || err instanceof VersionNotFoundError)) this.log(`pre-pulling ${versionKey(ev.name, ev.version)}: ${err.message}`);
    });
  }
}
