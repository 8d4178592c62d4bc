/**
 * `faasbox image ls | inspect | rm | prune`: the image store of a state dir
 * (worker/engine/image/store.ts), as tables for people and JSON for scripts.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_STATE_DIR } from '../worker/engine/state-dir.js';
import { ImageStore, type ImageDetails, type ImageSummary } from '../worker/engine/image/store.js';
import { pruneStore, removeImage } from '../worker/engine/image/prune.js';
import { CliError } from './args.js';
import { engineEnv } from './engine-env.js';
export { STORE_USAGE } from './image-help.js';

function parse(argv: string[], force = false) {
  const options = { json: { type: 'boolean', default: false }, 'state-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' }, force: { type: 'boolean', default: false } } as const;
  const parsed = parseArgs({ args: argv, allowPositionals: true, options });
  if (parsed.values.force && !force) throw new CliError('--force is an option of image rm only');
  return parsed;
}

function storeOf(stateDir: string | undefined): ImageStore {
  return new ImageStore(path.resolve(stateDir ?? engineEnv().stateDir ?? DEFAULT_STATE_DIR));
}

function oneRef(positionals: string[], cmd: string): string {
  if (positionals.length !== 1 || !positionals[0]) throw new CliError(`expected exactly one REF; see faasbox image ${cmd} --help`);
  return positionals[0];
}

export function mb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);

/** Columns padded to their widest cell. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function lsRows(images: ImageSummary[]): string[][] {
  const rows = [['REFERENCE', 'DIGEST', 'SIZE', 'PLATFORM', 'PULLED', 'IN USE']];
  for (const i of images) {
    const used = i.usedBy.length ? i.usedBy.map((u) => u.replace(/^container /, '').replace(/ \(.*\)$/, '')).join(',') : '-';
    const pulled = i.pulledAt ? i.pulledAt.slice(0, 19).replace('T', ' ') : '-';
    for (const [n, tag] of (i.tags.length ? i.tags : ['<none>']).entries()) {
      rows.push(n === 0 ? [tag, short(i.digest), mb(i.size), i.platform ?? '-', pulled, used] : [tag, '', '', '', '', '']);
    }
  }
  return rows;
}

export async function ls(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  if (positionals.length) throw new CliError('image ls takes no arguments; see faasbox image ls --help');
  const images = storeOf(values['state-dir']).list();
  if (values.json) console.log(JSON.stringify(images));
  else if (images.length === 0) console.log('no images in the store');
  else console.log(table(lsRows(images)));
  return 0;
}

function inspectText(d: ImageDetails): string {
  const lines = [
    `digest      ${d.digest}`,
    `tags        ${d.tags.join(', ') || '<none>'}`,
    `media type  ${d.mediaType}`,
    `config      ${d.configDigest}`,
    `platform    ${d.platform ?? '-'}`,
    `created     ${d.created ?? '-'}`,
    `pulled      ${d.pulledAt ?? '-'}`,
    `size        ${mb(d.size)} (blobs)`,
    `in use by   ${d.usedBy.join(', ') || '-'}`,
    'run config',
    `  Entrypoint  ${d.config.entrypoint ? JSON.stringify(d.config.entrypoint) : '-'}`,
    `  Cmd         ${d.config.cmd ? JSON.stringify(d.config.cmd) : '-'}`,
    `  WorkingDir  ${d.config.workingDir ?? '-'}`,
    `  User        ${d.config.user ?? '-'}`,
    `  StopSignal  ${d.config.stopSignal ?? '-'}`,
    `  Env         ${d.config.env.length ? '' : '-'}`,
    ...d.config.env.map((e) => `    ${e}`),
    `layers (${d.layers.length}, bottom first)`,
    ...table(d.layers.map((l) => [`  ${short(l.digest)}`, mb(l.size), l.mediaType, l.unpacked ? 'unpacked' : 'not unpacked'])).split('\n'),
  ];
  return lines.join('\n');
}

export async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  const details = storeOf(values['state-dir']).inspect(oneRef(positionals, 'inspect'));
  console.log(values.json ? JSON.stringify(details) : inspectText(details));
  return 0;
}

export async function rm(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, true);
  const ref = oneRef(positionals, 'rm');
  const result = await removeImage(storeOf(values['state-dir']), ref, { force: values.force });
  if (values.json) {
    console.log(JSON.stringify(result));
  } else {
    for (const t of result.untagged) console.log(`untagged ${t}`);
    if (result.removed) console.log(`removed ${result.digest} (freed ${mb(result.freedBytes)})`);
    else console.log(`kept ${result.digest}: ${result.untagged.length ? 'still tagged or in use' : 'no tag of it was named'}`);
  }
  return 0;
}

export async function prune(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  if (positionals.length) throw new CliError('image prune takes no arguments; see faasbox image prune --help');
  const report = await pruneStore(storeOf(values['state-dir']));
  if (values.json) {
    console.log(JSON.stringify(report));
  } else {
    for (const d of report.images) console.log(`removed ${d}`);
    console.log(`pruned ${report.images.length} images, ${report.blobs} blobs, ${report.layers} layers, ${report.tmp} tmp entries; freed ${mb(report.freedBytes)}`);
    for (const p of report.left) console.log(`left ${p} (another filesystem is mounted there, or it could not be removed)`);
  }
  return 0;
}
