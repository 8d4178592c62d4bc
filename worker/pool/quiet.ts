/**
 * Quiet moments: background work (refills, teardowns) waits until no invocation has been
 * in flight for QUIET_MS. Creating a container does milliseconds of synchronous work on
 * this thread (mkdirs, mounts, cgroup writes), destroying one as much again, and booting a
 * runtime takes a core for tens of ms: started next to a running invocation, that lands on
 * the invocation's path after all (measured in bench/coldstart: a completion event waited
 * up to 17 ms behind a stem cell's boot). Under steady load the work runs after
 * MAX_DEFER_MS anyway, so pools still refill during long bursts.
 */

/** Background work waits until nothing has been in flight this long. */
const QUIET_MS = 10;
/** ...but never longer than this once asked for. */
const MAX_DEFER_MS = 250;

export class QuietMoments {
  private waiters: (() => void)[] = [];
  private wantedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** inflight(): invocations holding a lease right now, over all functions. */
  constructor(private readonly inflight: () => number) {}

  /** Runs `run` at the next quiet moment. */
  whenQuiet(run: () => void): void {
    this.waiters.push(run);
    this.wantedAt ??= Date.now();
    this.schedule();
  }

  /** The pool has just gone quiet (nothing in flight): waiting work may go sooner. */
  wentQuiet(): void {
    if (!this.waiters.length) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule();
  }

  /** Drops every waiting run (the pool closes and removes everything itself). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiters = [];
    this.wantedAt = undefined;
  }

  private schedule(): void {
    if (this.wantedAt === undefined || this.timer) return;
    const waited = Date.now() - this.wantedAt;
    const delay = this.inflight() === 0 ? QUIET_MS : Math.max(0, MAX_DEFER_MS - waited);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.wantedAt === undefined) return;
      if (this.inflight() > 0 && Date.now() - this.wantedAt < MAX_DEFER_MS) return this.schedule();
      this.wantedAt = undefined;
      for (const run of this.waiters.splice(0)) run();
    }, delay);
  }
}
