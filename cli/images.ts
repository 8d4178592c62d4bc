/**
 * `faasbox image ...`: builds runtime image layers from the recipes in images/.
 */
import { parseArgs } from 'node:util';
import path from 'node:path';
import { buildImage, type BuildProgress } from '../images/build.js';
import { IMAGE_NAMES, isImageName } from '../images/recipe.js';
import { ImageBuildError } from '../images/errors.js';

const DEFAULT_OUT = path.join(process.env.FAASBOX_STATE_DIR ?? '/var/lib/faasbox', 'images');

const HELP = `Usage: faasbox image build <name> [--out DIR] [--json]

Builds an image layer directory offline from this machine's files and prints where it is.
A build whose inputs are unchanged is found and reused, not repeated.

Images:
  ${IMAGE_NAMES.join(', ')}

Options:
  --out DIR    where images go (default ${DEFAULT_OUT}, i.e. $FAASBOX_STATE_DIR/images)
  --json       print the result as JSON on stdout, no progress
  -h, --help   this help`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd !== 'build') throw new ImageBuildError('USAGE', `unknown image command "${cmd}"; try: faasbox image --help`);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { out: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const [name, ...extra] = positionals;
  if (!name || extra.length) throw new ImageBuildError('USAGE', 'expected exactly one image name; try: faasbox image --help');
  if (!isImageName(name)) throw new ImageBuildError('UNKNOWN_IMAGE', `unknown image "${name}"; known: ${IMAGE_NAMES.join(', ')}`);
  const out = values.out ?? DEFAULT_OUT;
  const started = performance.now();
  const progress = values.json || !process.stderr.isTTY ? undefined : progressPrinter(name);
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
