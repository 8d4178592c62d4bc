/**
 * The container engine's settings from the environment, read here, at the edge, once per
 * command; the engine itself takes them as arguments (worker/engine/engine.ts EngineOptions).
 *
 *   FAASBOX_STATE_DIR    containers' state, images, code layers (default /var/lib/faasbox)
 *   FAASBOX_CGROUP_ROOT  the cgroup under which containers' cgroups are made (default /faasbox/<hash of the state dir>)
 *   FAASBOX_SEEDS        container inits kept parked (cgroup v1; default 2; 0: none)
 *   FAASBOX_ZYGOTE       0: spawn faasbox-init per container instead of forking it from one zygote
 *   FAASBOX_INIT_BIN     another faasbox-init binary than the one `npm install` built
 */
import { parseNumber } from './args.js';
import type { EngineOptions } from '../worker/engine/engine.js';

export type EngineEnv = Pick<EngineOptions, 'stateDir' | 'cgroupRoot' | 'seeds' | 'zygote' | 'initBin'>;

export function engineEnv(env: NodeJS.ProcessEnv = process.env): EngineEnv {
  const out: EngineEnv = {};
  if (env.FAASBOX_STATE_DIR) out.stateDir = env.FAASBOX_STATE_DIR;
  if (env.FAASBOX_CGROUP_ROOT) out.cgroupRoot = env.FAASBOX_CGROUP_ROOT;
  if (env.FAASBOX_SEEDS) out.seeds = parseNumber('FAASBOX_SEEDS', env.FAASBOX_SEEDS, 'whole');
  if (env.FAASBOX_ZYGOTE !== undefined) out.zygote = env.FAASBOX_ZYGOTE !== '0';
  if (env.FAASBOX_INIT_BIN) out.initBin = env.FAASBOX_INIT_BIN;
  return out;
}
