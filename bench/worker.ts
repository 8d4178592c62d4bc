import type { RunningWorker } from '../worker/main.js';

/** A bench's worker stopped with everything its engine made: containers, state and its cgroup root. */
export function stopWorker(w: RunningWorker): () => Promise<void> {
  return async () => {
    await w.close();
    await w.engine.gc({ all: true });
    w.engine.cgroups.removeRoot();
  };
}
