/**
 * The pull every caller outside the store's own tests uses (the CLI, the worker's image
 * requests, `ctr run --pull`): pull.ts's pullImage holding the store's shared lock
 * (store-lock.ts) from its first blob to its tag, so a prune never removes what a pull has
 * written but not yet named in a record. A function returning it, so that a worker or a
 * test can be handed another puller (a scripted one) in its place.
 */
import { withStoreLock } from './store-lock.js';
import { pullImage } from './pull.js';
import type { PullImage } from './pull-types.js';

const lockedPull: PullImage = (imagesDir, ref, opts = {}) => withStoreLock(imagesDir, 'shared', () => pullImage(imagesDir, ref, opts), opts.signal ? { signal: opts.signal } : {});

export async function loadPuller(): Promise<PullImage> {
  return lockedPull;
}
