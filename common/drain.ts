/**
 * The SIGTERM drain shared by the worker and the gateway: stop taking work, give what is
 * in flight a grace period to finish, then act on what is left (the worker returns its
 * invocations to the queue, the gateway closes the connections still open).
 */

/**
 * Long enough for the usual invocation (Lambda's default timeout is 3 s) to end by itself.
 * A pod's terminationGracePeriodSeconds must exceed it (Kubernetes' default is also 30 s),
 * or the kubelet's SIGKILL lands before what is left has been returned to the queue.
 */
export const DEFAULT_DRAIN_GRACE_MS = 30_000;

/** Resolves true when `work` settles within `graceMs`, false when the grace ran out first (work keeps going). */
export async function withinGrace(work: Promise<unknown>, graceMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), graceMs);
  });
  try {
    return await Promise.race([work.then(() => true as const, () => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}
