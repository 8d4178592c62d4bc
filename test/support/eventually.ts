/**
 * The test suite's one poll: waits until cond holds, checking every 10 ms, and fails
 * naming what it waited for after ms. Bounds are generous on purpose: the machine is
 * shared, so they say "never" rather than "too slow" (timings are reported, not asserted).
 */
export async function eventually(cond: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
