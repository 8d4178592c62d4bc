/**
 * What the gateway's and the worker's metrics share: one registry per process, and
 * invocation metrics off the reply's path. A function's first observation creates its
 * label series (0.08 ms in the worker's metrics against 0.03 ms for a known function,
 * measured in bench/coldstart), and a newly deployed function's first invocation is the
 * one whose latency matters most. So an invocation's observations are recorded one
 * macrotask after its reply is on its way (afterReply), and a scrape waits one macrotask
 * too (scrape): it still sees every invocation answered before it began.
 */
import type { Metric, Registry } from 'prom-client';

/**
 * The collector registered under name, or the one make() registers: components that run
 * in one process share one registry, and a second registration of a name would throw.
 */
export function registered<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function afterReply(observe: () => void): void {
  setImmediate(observe);
}

/** The registry in Prometheus text format, once the observations queued before now are in. */
export async function scrape(registry: Registry): Promise<string> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  return registry.metrics();
}

/**
 * Removes every series labelled function=name from every metric of the registry: a
 * deleted function's name must not stay listed on /metrics (nor its series grow the
 * registry forever). Histograms are removed by their labels without `le`.
 */
export async function forgetFunction(registry: Registry, name: string): Promise<void> {
  for (const metric of registry.getMetricsAsArray() as unknown as Metric[]) {
    const { values } = await metric.get();
    const done = new Set<string>();
    for (const { labels } of values) {
      if (labels.function !== name) continue;
      const { le: _le, ...series } = labels;
      const key = JSON.stringify(series);
      if (done.has(key)) continue;
      done.add(key);
      metric.remove(series);
    }
  }
}
