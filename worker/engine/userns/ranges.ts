/**
 * Host id ranges for user-namespace containers: container ids 0..size-1 map to host ids
 * base + index*size ... (one range per live container, never shared), so that whatever
 * escapes a container's namespaces is an id no host file and no other container owns.
 *
 * A range is taken by creating its lease file exclusively (O_EXCL) under the state dir:
 * two engines on one state dir never hand out the same range, and a crashed worker's
 * leases are found again by gc (the lease names its container; no container dir, no
 * lease).
 */
import { linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { EngineError } from '../errors.js';

export interface IdRange {
  index: number;
  /** Host id that container id 0 maps to. */
  hostId: number;
  size: number;
}

export interface RangeOptions {
  /** First host id handed out. Default 2^31: far above any id a distribution assigns (useradd stops at 60000, systemd's dynamic users at 65519, its nspawn ranges at 0x6FFFFFFF are inside 2^31..2^32 too but unused here). */
  base?: number;
  /** Ids per container. Default 65536: a full 16-bit uid space, what images expect (nobody = 65534). */
  size?: number;
}

export const DEFAULT_BASE = 2 ** 31;
export const DEFAULT_SIZE = 65536;
/** The top uid, 2^32-1, is (uid_t)-1, "no change" to setresuid: never map it. */
const ID_LIMIT = 2 ** 32 - 1;

export function leasesDir(stateDir: string): string {
  return path.join(stateDir, 'userns');
}

export class IdRanges {
  readonly base: number;
  readonly size: number;
  readonly count: number;
  private readonly dir: string;
  /**
   * Where the next scan starts: the lowest range this engine knows may be free, so that
   * freed ranges are leased again soon (their idmap namespaces are cached, namespace.ts).
   */
  private next = 0;

  constructor(stateDir: string, opts: RangeOptions = {}) {
    this.base = opts.base ?? DEFAULT_BASE;
    this.size = opts.size ?? DEFAULT_SIZE;
    if (!Number.isSafeInteger(this.base) || this.base < 65536) throw new EngineError('INVALID_SPEC', `userns id base must be an integer of at least 65536 (host ids below are the host's own), got ${this.base}`);
    if (!Number.isSafeInteger(this.size) || this.size < 1 || this.size > 65536 * 16) throw new EngineError('INVALID_SPEC', `userns range size must be in [1, 1048576], got ${this.size}`);
    this.count = Math.floor((ID_LIMIT - this.base) / this.size);
    if (this.count < 1) throw new EngineError('INVALID_SPEC', `userns id base ${this.base} leaves no range of ${this.size} ids below 2^32-1`);
    this.dir = leasesDir(stateDir);
  }

  /** Takes a free range for container id; throws USERNS_EXHAUSTED when every range is leased. */
  allocate(id: string): IdRange {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // Written aside, then linked into place: link(2) fails on an existing name, and a
    // lease is never seen without the id of its container (gc would free it).
    const draft = path.join(this.dir, `.draft-${id}`);
    writeFileSync(draft, id, { mode: 0o600 });
    try {
      for (let tried = 0; tried < this.count; tried++) {
        const index = (this.next + tried) % this.count;
        try {
          linkSync(draft, this.leasePath(index));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
          throw err;
        }
        this.next = (index + 1) % this.count;
        return this.range(index);
      }
    } finally {
      rmSync(draft, { force: true });
    }
    throw new EngineError('CREATE_FAILED', `all ${this.count} user-namespace id ranges are leased (${this.dir})`, { code: 'USERNS_EXHAUSTED' });
  }

  range(index: number): IdRange {
    return { index, hostId: this.base + index * this.size, size: this.size };
  }

  /** Frees the range if it is still id's: gc may have freed it (its owner had died) and another container leased it since. */
  release(range: IdRange, id: string): void {
    const p = this.leasePath(range.index);
    try {
      if (readFileSync(p, 'utf8') !== id) return;
    } catch {
      return; // freed already
    }
    rmSync(p, { force: true });
    if (range.index < this.next) this.next = range.index;
  }

  /** Leases as index -> container id. */
  leases(): Map<number, string> {
    const out = new Map<number, string>();
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      try {
        out.set(Number(name), readFileSync(path.join(this.dir, name), 'utf8'));
      } catch {
        // released meanwhile
      }
    }
    return out;
  }

  /** Frees the leases of containers for which keep() is false; returns the container ids freed. */
  collect(keep: (id: string) => boolean): string[] {
    const freed: string[] = [];
    for (const [index, id] of this.leases()) {
      if (keep(id)) continue;
      rmSync(this.leasePath(index), { force: true });
      freed.push(id);
    }
    return freed;
  }

  private leasePath(index: number): string {
    return path.join(this.dir, String(index));
  }
}
