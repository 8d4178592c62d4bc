/**
 * `ctr run --image REF`: the container spec from a stored image (its layers as the rootfs,
 * its config as the process's defaults, the caller's CMD/--user/--env/--cwd over them).
 * With --pull, a REF the store does not have is pulled first (credentials and settings as
 * `faasbox image pull` takes them by default: the Docker config.json, else anonymous).
 */
import path from 'node:path';
import { DEFAULT_STATE_DIR } from '../worker/engine/engine.js';
import { engineEnv } from './engine-env.js';
import { imagesDirOf } from '../worker/engine/image/paths.js';
import { pullImage } from '../worker/engine/image/pull.js';
import { resolveStoredRef } from '../worker/engine/image/refs.js';
import { prepareImage } from '../worker/engine/image/rootfs.js';
import type { ProcessOverrides } from '../worker/engine/image/config.js';
import type { ContainerSpec } from '../worker/engine/spec.js';
import { linuxSys } from '../worker/engine/sys/index.js';
import { ImageNotFoundError } from '../common/errors.js';

export interface ImageRun {
  spec: ContainerSpec;
  stopSignal: NodeJS.Signals;
}

export async function imageSpec(ref: string, pull: boolean, stateDir: string | undefined, over: { cmd: string[]; user?: string | undefined; env?: string[] | undefined; cwd?: string | undefined }): Promise<ImageRun> {
  const imagesDir = imagesDirOf(path.resolve(stateDir ?? engineEnv().stateDir ?? DEFAULT_STATE_DIR));
  let record;
  try {
    record = resolveStoredRef(imagesDir, ref);
  } catch (err) {
    if (!(pull && err instanceof ImageNotFoundError)) throw err;
    record = (await pullImage(imagesDir, ref)).record;
  }
  const overrides: ProcessOverrides = { cmd: over.cmd };
  if (over.user !== undefined) overrides.user = over.user;
  if (over.env !== undefined) overrides.env = over.env;
  if (over.cwd !== undefined) overrides.cwd = over.cwd;
  const { layers, process } = await prepareImage(await linuxSys(), imagesDir, record, overrides);
  return {
    spec: {
      rootfs: { layers },
      process: { args: process.args, env: process.env, cwd: process.cwd, uid: process.uid, gid: process.gid, groups: process.groups },
      limits: {},
    },
    stopSignal: process.stopSignal,
  };
}
