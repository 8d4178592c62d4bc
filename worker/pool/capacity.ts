/**
 * Invocations waiting for capacity (every container busy, the budget spent): each waits
 * until a container is released or removed, or its deadline passes; woken one at a time,
 * so one release does not send every waiter into the same full pool.
 */
export class CapacityWaiters {
  private waiters: (() => void)[] = [];

  /** Resolves at the next wakeOne() or at `until` (epoch ms), whichever comes first. */
  wait(until: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, Math.max(1, until - Date.now()));
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  wakeOne(): void {
    this.waiters.shift()?.();
  }
}
