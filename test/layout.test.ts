/**
 * The import direction between folders, checked over the source: shared code lives in
 * common/, and no service folder reaches into another's. A new import that breaks the
 * rule fails here with the file and the import, before it becomes a habit.
 *
 *   common/    -> common
 *   gateway/   -> gateway, common
 *   scheduler/ -> scheduler, common
 *   images/    -> images, common          (runtime images: recipes, shims, protocol)
 *   worker/    -> worker, common, images  (the engine is worker/engine/)
 *   cli/, bench/ are the edges: they may import anything.
 *
 * Tests (*.test.ts) may also import test/support; the boot measurements under images/
 * are tools run by hand (they drive the engine), so they count as edges too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const ALLOWED: Record<string, readonly string[]> = {
  common: ['common'],
  gateway: ['gateway', 'common'],
  scheduler: ['scheduler', 'common'],
  images: ['images', 'common'],
  worker: ['worker', 'common', 'images'],
};
const EDGE_FILES = new Set(['images/nodejs/measure-boot.ts', 'images/python3/measure-boot.ts']);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(repo, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || e.name === 'build' || e.name === 'rootfs') continue;
      out.push(...sources(rel));
    } else if (/\.(ts|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) {
      out.push(rel);
    }
  }
  return out;
}

/** Every relative module specifier of a file: static imports, re-exports, dynamic imports. */
function importsOf(text: string): string[] {
  const re = /(?:from\s+|import\s*\(\s*|import\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
  return [...text.matchAll(re)].map((m) => m[2]!);
}

test('no folder imports from a folder it must not depend on', () => {
  const broken: string[] = [];
  let checked = 0;
  for (const top of Object.keys(ALLOWED)) {
    for (const file of sources(top)) {
      if (EDGE_FILES.has(file)) continue;
      const isTest = file.endsWith('.test.ts');
      for (const spec of importsOf(fs.readFileSync(path.join(repo, file), 'utf8'))) {
        checked++;
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
        const targetTop = target.split('/')[0]!;
        if (ALLOWED[top]!.includes(targetTop)) continue;
        if (isTest && target.startsWith('test/support/')) continue;
        broken.push(`${file} imports ${spec} (${targetTop}/ is not allowed from ${top}/)`);
      }
    }
  }
  assert.ok(checked > 100, `the check saw only ${checked} imports: is it reading the source tree?`);
  assert.deepEqual(broken, []);
});

test('the check itself catches a forbidden import', () => {
  const spec = importsOf("import { x } from '../scheduler/main.js';\nconst y = await import('../../worker/main.js');");
  assert.deepEqual(spec, ['../scheduler/main.js', '../../worker/main.js']);
});
