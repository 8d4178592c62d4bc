/**
 * Where the image sources (recipes, the runtime shims) live. They are not TypeScript, so
 * tsc does not copy them to dist/: compiled code finds them in the source tree.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

let cached: string | undefined;

/** The images/ source folder: this file's own folder when run from source, else ../../images from dist/images. */
export function imagesSourceDir(): string {
  if (cached) return cached;
  for (const dir of [here, path.resolve(here, '../../images')]) {
    if (existsSync(path.join(dir, 'nodejs', 'runtime', 'runtime.cjs'))) return (cached = dir);
  }
  throw new Error(`images sources not found near ${here} (looked for nodejs/runtime/runtime.cjs)`);
}

export function nodeRuntimeEntry(): string {
  return path.join(imagesSourceDir(), 'nodejs', 'runtime', 'runtime.cjs');
}
