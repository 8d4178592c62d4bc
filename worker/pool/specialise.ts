/**
 * Making a container a function's: its limits (specconv's, the same conversion a cold
 * boot uses) and its load, in the order that keeps the load's round trip short.
 */
import { limitsChange } from '../instance/specconv.js';
import type { PooledInstance } from './instances.js';
import type { FunctionTarget } from './types.js';

/**
 * Sets the function's limits and sends its load; the promise settles when it has loaded.
 * fromStem: a stem cell's, so a bridge function's egress allowlist and bandwidth are set
 * first (a container booted for the function has them from its create).
 */
export function loadFunction(instance: PooledInstance, target: FunctionTarget, fromStem = false): Promise<void> {
  if (fromStem && target.network) {
    let shaping: Promise<void> | undefined;
    try {
      // Before the load: the function's code never runs with another's egress, nor without its limits.
      shaping = instance.setNetwork(target.network);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (shaping) return shaping.then(() => limitsAndLoad(instance, target));
  }
  return limitsAndLoad(instance, target);
}

function limitsAndLoad(instance: PooledInstance, target: FunctionTarget): Promise<void> {
  const change = limitsChange(instance.limits, target.limits);
  const load = () => instance.beginLoad(target.key, target.codeDir, { entry: target.entry, handler: target.handler, env: target.env }, target.loadTimeoutMs);
  if (change.before) {
    // Memory, pids and disk are the function's before any of its code runs.
    instance.setLimits({ ...change.before, ...change.cpu }, target.limits);
    return load();
  }
  if (!change.cpu) return load();
  // Only the CPU quota changes (containers are pooled by memory size), and it is written
  // while the load request is on its way (0.2 ms off the path). The function's code
  // cannot get more than its burst allows anyway: a quota written mid-period starts with
  // a full slice, a full core for the quota's length.
  const loading = load();
  try {
    instance.setLimits(change.cpu, target.limits);
  } catch (err) {
    loading.catch(() => {});
    return instance.kill().then(() => Promise.reject(err));
  }
  return loading;
}
