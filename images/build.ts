/**
 * Builds an image layer directory from its recipe, offline, from this machine's files.
 *
 * Layout under outDir:
 *   <name>-<key>/rootfs/               the layer (an OverlayFS lower dir; never changed once renamed in)
 *   <name>-<key>/faasbox-image.json    name, content digest, size, the recipe's inputs
 *   <name> -> <name>-<key>             the newest build, for people
 *
 * <key> hashes the recipe's inputs (the plan, plus size/mtime/mode of each host file and
 * the bytes of small ones), so an unchanged recipe is found without copying or hashing
 * 100 MB, and a changed one (node upgraded) lands beside the old layer instead of over
 * it: containers may still have the old one mounted.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  readlinkSync,
  readdirSync,
} from 'node:fs';
import path from 'node:path';
import { ImageBuildError } from './errors.js';
import { loadRecipe, planRecipe, type ImageName, type PlanEntry, type Recipe } from './recipe.js';
import { digestTree } from './digest.js';

export const MANIFEST_FILE = 'faasbox-image.json';
const MANIFEST_VERSION = 1;
/** Host files up to this size have their bytes in the input key; larger ones their size and mtime. */
const HASHED_INPUT_LIMIT = 1 << 20;

export interface BuildProgress {
  phase: 'plan' | 'copy' | 'compile' | 'digest' | 'done';
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

export interface BuildOptions {
  onProgress?: (p: BuildProgress) => void;
}

export interface ImageManifest {
  version: number;
  name: ImageName;
  description: string;
  /** sha256 over the layer's sorted listing (see digest.ts). */
  digest: string;
  /** Hash of the recipe's inputs; names the build directory. */
  inputKey: string;
  files: number;
  bytes: number;
  builtAt: string;
  builtBy: { node: string; pid: number };
}

export interface BuiltImage {
  name: ImageName;
  /** The layer directory (rootfs) to give the engine as a lower layer. */
  dir: string;
  manifestPath: string;
  manifest: ImageManifest;
  digest: string;
  /** false when an identical build was already there and nothing was done. */
  built: boolean;
}

export async function buildImage(name: ImageName, outDir: string, opts: BuildOptions = {}): Promise<BuiltImage> {
  const recipe = loadRecipe(name);
  const plan = planRecipe(recipe);
  const inputKey = inputKeyOf(recipe, plan);
  const buildDir = path.join(path.resolve(outDir), `${name}-${inputKey.slice(0, 16)}`);
  mkdirSync(path.dirname(buildDir), { recursive: true });

  const existing = readManifest(buildDir);
  if (existing && existing.inputKey === inputKey) {
    pointLatest(outDir, name, buildDir);
    opts.onProgress?.({ phase: 'done', files: existing.files, totalFiles: existing.files, bytes: existing.bytes, totalBytes: existing.bytes });
    return result(name, buildDir, existing, false);
  }

  // Built beside the target and renamed in whole: a reader sees no layer or a complete one.
  const tmp = path.join(path.dirname(buildDir), `.${path.basename(buildDir)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const manifest = populate(recipe, plan, inputKey, tmp, opts);
    try {
      renameSync(tmp, buildDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another builder won the race (or a broken leftover is in the way).
      const other = readManifest(buildDir);
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && other?.inputKey === inputKey) {
        rmSync(tmp, { recursive: true, force: true });
        pointLatest(outDir, name, buildDir);
        return result(name, buildDir, other, false);
      }
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        rmSync(buildDir, { recursive: true, force: true });
        renameSync(tmp, buildDir);
      } else {
        throw err;
      }
    }
    pointLatest(outDir, name, buildDir);
    return result(name, buildDir, manifest, true);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (err instanceof ImageBuildError) throw err;
    throw new ImageBuildError('BUILD_FAILED', `building ${name} in ${outDir} failed: ${(err as Error).message}`, { cause: err });
  }
}

function result(name: ImageName, buildDir: string, manifest: ImageManifest, built: boolean): BuiltImage {
  return { name, dir: path.join(buildDir, 'rootfs'), manifestPath: path.join(buildDir, MANIFEST_FILE), manifest, digest: manifest.digest, built };
}

export function readManifest(buildDir: string): ImageManifest | undefined {
  try {
    const m = JSON.parse(readFileSync(path.join(buildDir, MANIFEST_FILE), 'utf8')) as ImageManifest;
    if (m.version !== MANIFEST_VERSION || !existsSync(path.join(buildDir, 'rootfs'))) return undefined;
    return m;
  } catch {
    return undefined;
  }
}

export function inputKeyOf(recipe: Recipe, plan: PlanEntry[]): string {
  const h = createHash('sha256');
  h.update(`faasbox-image v${MANIFEST_VERSION} ${recipe.name}\n`);
  for (const e of plan) {
    if (e.kind === 'dir') h.update(`d ${e.mode.toString(8)} ${e.path}\n`);
    else if (e.kind === 'symlink') h.update(`l ${e.path} -> ${e.target}\n`);
    else if (e.kind === 'bytecode') {
      // The interpreter decides the bytecode; its sources are already in the plan.
      const st = statSync(e.python);
      h.update(`b ${e.path} ${e.python} ${st.size}:${st.mtimeMs}:${st.ino}\n`);
    }
    else if ('content' in e) h.update(`c ${e.mode.toString(8)} ${e.path} ${createHash('sha256').update(e.content).digest('hex')}\n`);
    else {
      const st = statSync(e.source);
      const sig = st.size <= HASHED_INPUT_LIMIT ? createHash('sha256').update(readFileSync(e.source)).digest('hex') : `${st.size}:${st.mtimeMs}:${st.ino}`;
      h.update(`f ${e.mode.toString(8)} ${e.path} ${e.source} ${sig}\n`);
    }
  }
  return h.digest('hex');
}

function populate(recipe: Recipe, plan: PlanEntry[], inputKey: string, tmp: string, opts: BuildOptions): ImageManifest {
  const rootfs = path.join(tmp, 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  chmodSync(tmp, 0o755);
  // Containers run as nobody: the layer's root must be traversable whatever the umask.
  chmodSync(rootfs, 0o755);
  const copies = plan.filter((e) => e.kind === 'file');
  const totalFiles = copies.length;
  const totalBytes = copies.reduce((n, e) => n + ('source' in e ? statSync(e.source).size : Buffer.byteLength(e.content)), 0);
  const progress = { phase: 'copy' as BuildProgress['phase'], files: 0, totalFiles, bytes: 0, totalBytes };
  opts.onProgress?.({ ...progress, phase: 'plan' });
  for (const e of plan) {
    const dest = path.join(rootfs, e.path);
    switch (e.kind) {
      case 'dir':
        mkdirSync(dest, { recursive: true });
        chmodSync(dest, e.mode);
        break;
      case 'symlink':
        symlinkSync(e.target, dest);
        break;
      case 'file':
        if ('source' in e) {
          copyFileSync(e.source, dest);
          progress.bytes += statSync(dest).size;
        } else {
          writeFileSync(dest, e.content);
          progress.bytes += Buffer.byteLength(e.content);
        }
        chmodSync(dest, e.mode);
        progress.files++;
        opts.onProgress?.({ ...progress });
        break;
      case 'bytecode':
        break;
    }
  }
  const jobs = plan.filter((e) => e.kind === 'bytecode');
  if (jobs.length > 0) opts.onProgress?.({ ...progress, phase: 'compile' });
  for (const job of jobs) compileBytecode(rootfs, job.path, job.python);
  opts.onProgress?.({ ...progress, phase: 'digest' });
  const d = digestTree(rootfs);
  const manifest: ImageManifest = {
    version: MANIFEST_VERSION,
    name: recipe.name,
    description: recipe.description,
    digest: d.digest,
    inputKey,
    files: d.files,
    bytes: d.bytes,
    builtAt: new Date().toISOString(),
    builtBy: { node: process.version, pid: process.pid },
  };
  writeFileSync(path.join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  opts.onProgress?.({ ...progress, phase: 'done' });
  return manifest;
}

/**
 * Compiles the layer's .py files under `dir` with the host interpreter. The source paths
 * recorded in the bytecode (tracebacks show them) are the in-image ones, not the build
 * directory's, so two builds give identical bytes.
 */
function compileBytecode(rootfs: string, dir: string, python: string): void {
  const target = path.join(rootfs, dir);
  try {
    execFileSync(
      python,
      ['-I', '-S', '-m', 'compileall', '-q', '--invalidation-mode', 'unchecked-hash', '-s', rootfs, '-p', '/', target],
      { stdio: ['ignore', 'pipe', 'pipe'], env: {}, encoding: 'utf8' },
    );
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new ImageBuildError('BUILD_FAILED', `compiling the Python bytecode under ${dir} with ${python} failed: ${`${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || (err as Error).message}`, {
      cause: err,
    });
  }
  // compileall's modes follow the builder's umask; the layer's must not (nobody reads it, and the digest sees modes).
  const fixModes = (d: string): void => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) {
        if (ent.name === '__pycache__') chmodSync(p, 0o755);
        fixModes(p);
      } else if (ent.isFile() && ent.name.endsWith('.pyc')) chmodSync(p, 0o644);
    }
  };
  fixModes(target);
}

/** outDir/<name> -> <name>-<key>, swapped atomically; purely a convenience, so failures are ignored. */
function pointLatest(outDir: string, name: string, buildDir: string): void {
  const link = path.join(path.resolve(outDir), name);
  const target = path.basename(buildDir);
  try {
    if (readlinkSync(link) === target) return;
  } catch {
    // missing, or not a symlink
  }
  const tmp = `${link}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    symlinkSync(target, tmp);
    renameSync(tmp, link);
  } catch {
    rmSync(tmp, { force: true });
  }
}
