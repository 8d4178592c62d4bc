/**
 * `ctr run --image REF`: the container spec from a stored image (its layers as the rootfs,
 * its config as the process's defaults, the caller's CMD/--user/--env/--cwd over them).
 * --pull pulls REF first when the store does not have it (through puller.ts: a build
 * without the puller says so). The spec names the image, so the container pins it against
 * prune from create to delete (image/pins.ts).
 */
import path from 'node:path';
import { DEFAULT_STATE_DIR } from '../worker/engine/state-dir.js';
import { engineEnv } from './engine-env.js';
import { imagesDirOf } from '../worker/engine/image/paths.js';
import { resolveStoredRef } from '../worker/engine/image/refs.js';
import { prepareImage } from '../worker/engine/image/rootfs.js';
import { loadPuller } from '../worker/engine/image/puller.js';
import { withStoreLock } from '../worker/engine/image/store-lock.js';
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
    if (!pull || !(err instanceof ImageNotFoundError)) throw err;
    const pullImage = await loadPuller();
    if (globalThis.process.stderr.isTTY) globalThis.process.stderr.write(`pulling ${ref} ...\n`);
    record = (await pullImage(imagesDir, ref)).record;
  }
  const overrides: ProcessOverrides = { cmd: over.cmd };
  if (over.user !== undefined) overrides.user = over.user;
  if (over.env !== undefined) overrides.env = over.env;
  if (over.cwd !== undefined) overrides.cwd = over.cwd;
  const sys = await linuxSys();
  // Shared: a prune waits while the layers are unpacked; the create's pin holds them after.
  const { layers, process } = await withStoreLock(imagesDir, 'shared', () => prepareImage(sys, imagesDir, record, overrides));
  return {
    spec: {
      rootfs: { layers, image: record.manifestDigest },
      process: { args: process.args, env: process.env, cwd: process.cwd, uid: process.uid, gid: process.gid, groups: process.groups },
      limits: {},
    },
    stopSignal: process.stopSignal,
  };
}
