/**
 * The scheduler's leader lease: the periodic work (orphan rescue, pool sizing, triggers)
 * runs in one scheduler at a time, the one holding `{p}:scheduler:leader` in Redis. The
 * holder renews it every tick; if it dies, the lease lapses after `leaseMs` and the next
 * scheduler to tick takes it. Each scheduler holds it under an id of its own
 * (host:pid:random), so that only the holder renews or releases it.
 *
 * Two may briefly both believe they lead (a holder stalled past its lease); the work is
 * safe under that: rescue moves jobs by script, sizing writes the same decisions, and a
 * cron tick fires only where its own lock is taken.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export function leaderKey(prefix: string): string {
  return `${prefix}:scheduler:leader`;
}

// KEYS: 1 lease. ARGV: 1 holder id, 2 lease ms. Takes a free lease or renews one's own.
// Returns 1 when this holder leads now.
const ACQUIRE = `local cur = redis.call('GET', KEYS[1])
if cur == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;

// KEYS: 1 lease. ARGV: 1 holder id. Gives it up only if held.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class LeaderLease {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private held = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly leaseMs: number,
  ) {}

  get isLeader(): boolean {
    return this.held;
  }

  /** Takes or renews the lease; false (and not leading) when another holds it or Redis is away. */
  async renew(): Promise<boolean> {
    try {
      this.held = (await this.redis.eval(ACQUIRE, 1, leaderKey(this.prefix), this.id, String(this.leaseMs))) === 1;
    } catch {
      this.held = false;
    }
    return this.held;
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.redis.eval(RELEASE, 1, leaderKey(this.prefix), this.id).catch(() => {});
  }
}
