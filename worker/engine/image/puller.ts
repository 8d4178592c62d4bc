/**
 * The one place that reaches the image puller (pull.ts, implementing pull-types.ts's
 * PullImage): loaded on first use, so that everything else builds and runs against the
 * contract alone, and a build without the puller answers UNAVAILABLE saying so instead of
 * failing at import. The pull it hands out holds the store's shared lock (lock.ts) from
 * its first blob to its tag, so a prune never removes what a pull has written but not yet
 * named in a record.
 */
import { UnavailableError } from '../../../common/errors.js';
import { withStoreLock } from './store-lock.js';
import type { PullImage } from './pull-types.js';

export const PULL_UNAVAILABLE = 'image pull is not available in this build (worker/engine/image/pull.ts is missing)';

let loaded: Promise<PullImage> | undefined;

async function load(): Promise<PullImage> {
  // A specifier in a variable: tsc checks a literal one, and the module may not exist.
  const specifier = './pull.js';
  let mod: { pullImage?: unknown };
  try {
    mod = (await import(specifier)) as { pullImage?: unknown };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' && /pull\.js/.test(e.message)) throw new UnavailableError(PULL_UNAVAILABLE, err);
    throw err;
  }
  if (typeof mod.pullImage !== 'function') throw new UnavailableError(`${PULL_UNAVAILABLE.replace('is missing', 'exports no pullImage')}`);
  const pull = mod.pullImage as PullImage;
  return (imagesDir, ref, opts = {}) => withStoreLock(imagesDir, 'shared', () => pull(imagesDir, ref, opts), opts.signal ? { signal: opts.signal } : {});
}

/** The puller; UNAVAILABLE when this build has none. A failed load is tried again next time. */
export function loadPuller(): Promise<PullImage> {
  loaded ??= load().catch((err: unknown) => {
    loaded = undefined;
    throw err;
  });
  return loaded;
}
