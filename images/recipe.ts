/**
 * Image recipes (images/<name>/recipe.json) and their expansion into a plan: the exact
 * list of directories, files and symlinks the layer will hold, with where each file's
 * bytes come from. Planning reads the host (ldd, busybox --list-full) but writes nothing.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, lstatSync, readlinkSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ImageBuildError } from './errors.js';
import { imagesSourceDir } from './sources.js';

export const IMAGE_NAMES = ['nodejs20', 'python3', 'busybox'] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

const RECIPE_FILES: Record<ImageName, string> = {
  nodejs20: 'nodejs/recipe.json',
  python3: 'python3/recipe.json',
  busybox: 'busybox/recipe.json',
};

/** One recipe step; exactly one of the discriminating keys is set. */
export type Step =
  /** A host ELF executable, copied with the shared libraries ldd lists and the dynamic loader, at the same paths. */
  | { binary: string; to?: string }
  /** A static busybox at /bin/busybox, with a symlink per applet where busybox --list-full puts it. */
  | { busybox: string }
  /** Files under images/<tree> whose name matches `include`, to `to`. */
  | { tree: string; to: string; include?: string }
  /**
   * A host directory copied whole (files, subdirectories, symlinks verbatim) to `to`
   * (default: the same path). `exclude` drops every entry whose name matches one of its
   * patterns (`*` is the only wildcard), with everything below it. `libraries: true` also
   * brings the shared libraries each `.so` in the tree links, as the binary step does.
   */
  | { hostTree: string; to?: string; exclude?: string[]; libraries?: boolean }
  /**
   * Python bytecode for every .py under `bytecode` (an in-image directory), compiled at
   * build time by the host's `python`, which must be the image's interpreter. The .pyc files
   * are hash-checked without checking (PEP 552 "unchecked-hash"): the layer is read-only,
   * so its sources cannot change under them, and copied files' mtimes do not matter.
   */
  | { bytecode: string; python: string }
  | { dir: string; mode?: string }
  | { file: string; content: string; mode?: string }
  | { symlink: string; target: string };

export interface Recipe {
  name: ImageName;
  description: string;
  steps: Step[];
}

export type PlanEntry =
  | { kind: 'dir'; path: string; mode: number }
  | { kind: 'file'; path: string; mode: number; source: string }
  | { kind: 'file'; path: string; mode: number; content: string }
  | { kind: 'symlink'; path: string; target: string }
  /** Runs after every other entry is in place; always at the end of a plan. */
  | { kind: 'bytecode'; path: string; python: string };

export function isImageName(name: string): name is ImageName {
  return (IMAGE_NAMES as readonly string[]).includes(name);
}

/**
 * Facts about the host a recipe may name as `$(fact)` in any string, asked of the host
 * when a recipe uses them: the Python standard library is /usr/lib/python3.11 on Debian
 * 12 but /usr/lib/python3.12 on Ubuntu 24.04, and the image is built from whichever the
 * machine has.
 */
const HOST_FACTS: Record<string, () => string> = {
  'python3-stdlib': () => askPython('sysconfig.get_paths()["stdlib"]'),
};

/** Evaluates a Python expression with the host's /usr/bin/python3 (isolated mode) and returns what it prints. */
export function askPython(expression: string): string {
  try {
    return execFileSync('/usr/bin/python3', ['-I', '-c', `import sys, sysconfig; print(${expression})`], { encoding: 'utf8' }).trim();
  } catch (err) {
    throw new ImageBuildError('MISSING_SOURCE', `cannot ask /usr/bin/python3 for ${expression} (install python3): ${(err as Error).message}`, { cause: err });
  }
}

function expandFacts(text: string, file: string): string {
  return text.replace(/\$\(([a-z0-9-]+)\)/g, (_, fact: string) => {
    const get = HOST_FACTS[fact];
    if (!get) throw new ImageBuildError('RECIPE_INVALID', `${file}: unknown host fact $(${fact}); known: ${Object.keys(HOST_FACTS).join(', ')}`);
    return get();
  });
}

export function loadRecipe(name: string): Recipe {
  if (!isImageName(name)) throw new ImageBuildError('UNKNOWN_IMAGE', `unknown image "${name}"; known: ${IMAGE_NAMES.join(', ')}`);
  const file = path.join(imagesSourceDir(), RECIPE_FILES[name]);
  let text: string;
  let recipe: Recipe;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ImageBuildError('RECIPE_INVALID', `cannot read recipe ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    // Facts are substituted in the parsed strings, so a value cannot break the JSON.
    recipe = JSON.parse(text, (_key, value: unknown) => (typeof value === 'string' ? expandFacts(value, file) : value)) as Recipe;
  } catch (err) {
    if (err instanceof ImageBuildError) throw err;
    throw new ImageBuildError('RECIPE_INVALID', `cannot read recipe ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (recipe.name !== name || !Array.isArray(recipe.steps)) {
    throw new ImageBuildError('RECIPE_INVALID', `${file}: expected {"name":"${name}","steps":[...]}`);
  }
  return recipe;
}

function parseMode(mode: string | undefined, fallback: number, where: string): number {
  if (mode === undefined) return fallback;
  if (!/^[0-7]{3,4}$/.test(mode)) throw new ImageBuildError('RECIPE_INVALID', `${where}: mode "${mode}" is not octal like "0755"`);
  return parseInt(mode, 8);
}

function absolute(p: string, where: string): string {
  if (!path.isAbsolute(p) || p.split('/').includes('..')) {
    throw new ImageBuildError('RECIPE_INVALID', `${where}: "${p}" must be an absolute path without ".."`);
  }
  return path.posix.normalize(p);
}

function requireSource(p: string, what: string): void {
  if (!existsSync(p)) {
    const hint = p.includes('busybox') ? ' (hint: apt-get install busybox-static)' : '';
    throw new ImageBuildError('MISSING_SOURCE', `${what} ${p} does not exist on this machine${hint}`);
  }
}

/** The shared objects ldd says `binary` needs, as absolute host paths (the loader included). */
export function sharedLibraries(binary: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    if (`${e.stdout ?? ''}${e.stderr ?? ''}`.includes('not a dynamic executable')) return [];
    throw new ImageBuildError('BUILD_FAILED', `ldd ${binary} failed: ${e.stderr ?? (err as Error).message}`, { cause: err });
  }
  const libs: string[] = [];
  for (const raw of out.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('statically linked')) continue;
    if (line.includes('=> not found')) {
      throw new ImageBuildError('MISSING_LIBRARY', `${binary} needs ${line.split(' ')[0]}, which the host does not have`);
    }
    // "libc.so.6 => /lib/.../libc.so.6 (0x..)" or "/lib64/ld-linux-x86-64.so.2 (0x..)"; linux-vdso has no path.
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

/** A name pattern of an exclude list: `*` matches any run of characters, nothing else is special. */
function namePattern(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** Host files, directories and symlinks under `root`, parents first, minus excluded names and what is below them. */
function walkHostTree(root: string, exclude: RegExp[]): { rel: string; kind: 'dir' | 'file' | 'symlink'; mode: number; abs: string }[] {
  const out: { rel: string; kind: 'dir' | 'file' | 'symlink'; mode: number; abs: string }[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      if (exclude.some((re) => re.test(name))) continue;
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = path.join(root, r);
      const st = lstatSync(abs);
      if (st.isDirectory()) {
        out.push({ rel: r, kind: 'dir', mode: st.mode & 0o777, abs });
        walk(r);
      } else if (st.isSymbolicLink()) {
        out.push({ rel: r, kind: 'symlink', mode: 0o777, abs });
      } else if (st.isFile()) {
        out.push({ rel: r, kind: 'file', mode: st.mode & 0o777, abs });
      }
      // Sockets, fifos and devices have no place in an image layer.
    }
  };
  walk('');
  return out;
}

function busyboxApplets(busybox: string): string[] {
  const out = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '' && l !== 'bin/busybox');
}

/** Expands a recipe into the layer's entries, parents before children, no duplicates. */
export function planRecipe(recipe: Recipe): PlanEntry[] {
  const entries = new Map<string, PlanEntry>();
  const jobs: PlanEntry[] = [];
  const put = (e: PlanEntry): void => {
    for (let dir = path.posix.dirname(e.path); dir !== '/'; dir = path.posix.dirname(dir)) {
      if (!entries.has(dir)) entries.set(dir, { kind: 'dir', path: dir, mode: 0o755 });
    }
    const had = entries.get(e.path);
    // An explicit dir step may refine the mode of an implied parent; anything else twice is a recipe bug.
    if (had && !(had.kind === 'dir' && e.kind === 'dir')) {
      if (had.kind === 'file' && e.kind === 'file' && 'source' in had && 'source' in e && had.source === e.source) return;
      throw new ImageBuildError('RECIPE_INVALID', `${recipe.name}: ${e.path} is produced twice`);
    }
    entries.set(e.path, e);
  };
  recipe.steps.forEach((step, i) => {
    const where = `${recipe.name} step ${i + 1}`;
    if ('binary' in step) {
      requireSource(step.binary, 'binary');
      put({ kind: 'file', path: absolute(step.to ?? step.binary, where), mode: statSync(step.binary).mode & 0o777, source: step.binary });
      for (const lib of sharedLibraries(step.binary)) {
        // Copied to the path the loader will look for, with the bytes of whatever it points to.
        put({ kind: 'file', path: absolute(lib, where), mode: 0o755, source: lib });
      }
    } else if ('busybox' in step) {
      requireSource(step.busybox, 'busybox');
      put({ kind: 'file', path: '/bin/busybox', mode: 0o755, source: step.busybox });
      for (const applet of busyboxApplets(step.busybox)) {
        const p = absolute(`/${applet}`, where);
        if (!entries.has(p)) put({ kind: 'symlink', path: p, target: '/bin/busybox' });
      }
    } else if ('tree' in step) {
      const from = path.join(imagesSourceDir(), step.tree);
      requireSource(from, 'tree');
      const include = new RegExp(step.include ?? '');
      const to = absolute(step.to, where);
      put({ kind: 'dir', path: to, mode: 0o755 });
      for (const name of readdirSync(from).sort()) {
        const src = path.join(from, name);
        if (!include.test(name) || !statSync(src).isFile()) continue;
        put({ kind: 'file', path: path.posix.join(to, name), mode: 0o644, source: src });
      }
    } else if ('hostTree' in step) {
      const from = absolute(step.hostTree, where);
      requireSource(from, 'host directory');
      const to = absolute(step.to ?? from, where);
      const exclude = (step.exclude ?? []).map(namePattern);
      put({ kind: 'dir', path: to, mode: statSync(from).mode & 0o777 });
      for (const e of walkHostTree(from, exclude)) {
        const dest = path.posix.join(to, e.rel);
        if (e.kind === 'dir') put({ kind: 'dir', path: dest, mode: e.mode });
        else if (e.kind === 'symlink') put({ kind: 'symlink', path: dest, target: readlinkSync(e.abs) });
        else {
          put({ kind: 'file', path: dest, mode: e.mode, source: e.abs });
          if (step.libraries && /\.so(\.|$)/.test(e.rel)) {
            for (const lib of sharedLibraries(e.abs)) put({ kind: 'file', path: absolute(lib, where), mode: 0o755, source: lib });
          }
        }
      }
    } else if ('bytecode' in step) {
      requireSource(step.python, 'python');
      jobs.push({ kind: 'bytecode', path: absolute(step.bytecode, where), python: step.python });
    } else if ('dir' in step) {
      put({ kind: 'dir', path: absolute(step.dir, where), mode: parseMode(step.mode, 0o755, where) });
    } else if ('file' in step) {
      put({ kind: 'file', path: absolute(step.file, where), mode: parseMode(step.mode, 0o644, where), content: step.content });
    } else if ('symlink' in step) {
      put({ kind: 'symlink', path: absolute(step.symlink, where), target: step.target });
    } else {
      throw new ImageBuildError('RECIPE_INVALID', `${where}: unknown step ${JSON.stringify(step)}`);
    }
  });
  for (const job of jobs) {
    if (!entries.has(job.path)) throw new ImageBuildError('RECIPE_INVALID', `${recipe.name}: bytecode for ${job.path}, which no step puts in the image`);
  }
  const sorted = [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return [...sorted, ...jobs];
}
