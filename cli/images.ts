/**
 * `faasbox image ...`: the image store (pull, ls, inspect, rm, prune: image-pull.ts and
 * image-store.ts) and the runtime images built from the recipes in images/ (build).
 * Exit codes a script can use: one table for all of them (image-exit.ts).
 */
import { parseArgs } from 'node:util';
import path from 'node:path';
import type { BuildProgress } from '../images/build.js';
import { IMAGE_NAMES, isImageName } from '../images/recipe.js';
import { ImageBuildError } from '../images/errors.js';
import { wantsHelp } from './args.js';
import { printError } from './report.js';
import { STORE_USAGE } from './image-help.js';
import { IMAGE_EXIT_HELP, imageExitCode } from './image-exit.js';

const DEFAULT_OUT = path.join(process.env.FAASBOX_STATE_DIR ?? '/var/lib/faasbox', 'images');

const HELP = `Usage: faasbox image <command> [options]

Commands:
  pull REF [--creds USER:PASS] [--platform os/arch[/variant]] [--json]
                      pull an image from an OCI registry into the store
  ls [--json]         the images in the store
  inspect REF [--json]
                      one image: record, config, layers
  rm REF [--force]    untag an image; it goes when no tag names it and nothing uses it
  prune [--json]      remove what no tag and no container references
  build NAME          build a runtime image's layer directory (${IMAGE_NAMES.join(', ')})

${IMAGE_EXIT_HELP}
Run "faasbox image <command> --help" for a command's options.`;

const BUILD_HELP = `Usage: faasbox image build <name> [--out DIR] [--json]

Builds an image layer directory offline from this machine's files and prints where it is.
A build whose inputs are unchanged is found and reused, not repeated.

Images:
  ${IMAGE_NAMES.join(', ')}

Options:
  --out DIR    where images go (default ${DEFAULT_OUT}, i.e. $FAASBOX_STATE_DIR/images)
  --json       print the result as JSON on stdout, no progress
  -h, --help   this help`;

/** Loaded when used: a pull need not load the store's commands, nor they the builder. */
const STORE_COMMANDS: Partial<Record<string, (argv: string[]) => Promise<number>>> = {
  ls: async (argv) => (await import('./image-store.js')).ls(argv),
  inspect: async (argv) => (await import('./image-store.js')).inspect(argv),
  rm: async (argv) => (await import('./image-store.js')).rm(argv),
  prune: async (argv) => (await import('./image-store.js')).prune(argv),
};

async function pull(argv: string[]): Promise<number> {
  return (await import('./image-pull.js')).pullCommand(argv);
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP);
    return cmd ? 0 : 2;
  }
  const store = STORE_COMMANDS[cmd];
  if (cmd === 'pull' || store) {
    if (store && wantsHelp(rest)) {
      console.log(STORE_USAGE[cmd]);
      return 0;
    }
    try {
      return await (store ?? pull)(rest);
    } catch (err) {
      const code = imageExitCode((err as { code?: string }).code);
      if (code === undefined) throw err;
      printError(err);
      return code;
    }
  }
  if (cmd !== 'build') throw new ImageBuildError('USAGE', `unknown image command "${cmd}"; try: faasbox image --help`);
  return build(rest);
}

async function build(rest: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { out: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    console.log(BUILD_HELP);
    return 0;
  }
  const [name, ...extra] = positionals;
  if (!name || extra.length) throw new ImageBuildError('USAGE', 'expected exactly one image name; try: faasbox image --help');
  if (!isImageName(name)) throw new ImageBuildError('UNKNOWN_IMAGE', `unknown image "${name}"; known: ${IMAGE_NAMES.join(', ')}`);
  const out = values.out ?? DEFAULT_OUT;
  const started = performance.now();
  const progress = values.json || !process.stderr.isTTY ? undefined : progressPrinter(name);
  const { buildImage } = await import('../images/build.js');
  const img = await buildImage(name, out, progress ? { onProgress: progress } : {});
  if (progress) process.stderr.write('\n');
  const ms = Math.round(performance.now() - started);
  if (values.json) {
    console.log(JSON.stringify({ name, dir: img.dir, digest: img.digest, built: img.built, files: img.manifest.files, bytes: img.manifest.bytes, ms }));
  } else {
    const mb = (img.manifest.bytes / 1e6).toFixed(1);
    console.log(`${name}: ${img.built ? 'built' : 'up to date'} in ${ms} ms`);
    console.log(`  layer   ${img.dir}`);
    console.log(`  digest  ${img.digest}`);
    console.log(`  size    ${img.manifest.files} files, ${mb} MB`);
  }
  return 0;
}

function progressPrinter(name: string): (p: BuildProgress) => void {
  let last = 0;
  return (p) => {
    const now = performance.now();
    // A line per file would be most of the work for busybox's few bytes; redraw at most every 50 ms.
    if (p.phase === 'copy' && now - last < 50 && p.files !== p.totalFiles) return;
    last = now;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    process.stderr.write(`\r${name}: ${p.phase} ${p.files}/${p.totalFiles} files, ${mb(p.bytes)}/${mb(p.totalBytes)} MB   `);
  };
}
