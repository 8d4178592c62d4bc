/**
 * `faasbox image pull REF`: an image from an OCI registry into the store under
 * $FAASBOX_STATE_DIR/images (worker/engine/image/pull.ts does the work), with a progress
 * display on a terminal and exit codes a script can branch on.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FaasboxError } from '../common/errors.js';
import { DEFAULT_STATE_DIR } from '../worker/engine/state-dir.js';
import { imagesDirOf } from '../worker/engine/image/paths.js';
import { loadPuller } from '../worker/engine/image/puller.js';
import type { PullOptions, PullProgress, RegistryCredentials } from '../worker/engine/image/pull-types.js';
import { parseCreds } from '../worker/engine/image/registry/auth.js';
import { formatPlatform, parsePlatform } from '../worker/engine/image/registry/manifest.js';
import { CliError } from './args.js';
import { IMAGE_EXIT_HELP, imageExitCode } from './image-exit.js';
import { engineEnv } from './engine-env.js';

export const PULL_HELP = `Usage: faasbox image pull REF [--creds USER:PASS | --creds-file FILE | --creds -]
                          [--platform os/arch[/variant]] [--insecure-registry HOST[:PORT]]...
                          [--ca-file FILE] [--json]

Pulls REF (host[:port]/path/name[:tag][@sha256:...]) from its registry into the image
store ($FAASBOX_STATE_DIR/images), verifying every digest, and unpacks its layers. A pinned
digest wins over the tag (and the tag is then not moved). There is no default registry:
write the host (docker.io/library/alpine, 127.0.0.1:5000/app).

Options:
  --creds USER:PASS       registry credentials (visible in ps: prefer the two below)
  --creds-file FILE       read USER:PASS from FILE
  --creds -               read USER:PASS from stdin
                          (default: the registry's entry in $DOCKER_CONFIG/config.json or
                          ~/.docker/config.json, else anonymous)
  --platform P            the platform to take from a multi-platform image (default: this
                          machine's, e.g. linux/amd64)
  --insecure-registry H   speak plain HTTP to H (repeatable); 127.0.0.1, localhost and [::1]
                          always may, as with Docker
  --ca-file FILE          a PEM CA bundle trusted beside the system's
  --json                  no progress; print {ref, digest, layers, transferredBytes}
  -h, --help              this help

Prints the image's manifest digest (progress on stderr when stdout is a terminal).
${IMAGE_EXIT_HELP}`;

/** The exit code for an error of `code` (1 for any the image table does not name). */
export const exitCodeOf = (code: string | undefined): number => imageExitCode(code) ?? 1;

function readCreds(values: { creds?: string | undefined; 'creds-file'?: string | undefined }): RegistryCredentials | undefined {
  if (values.creds !== undefined && values['creds-file'] !== undefined) throw new CliError('give --creds or --creds-file, not both');
  let text: string | undefined;
  let from = '--creds';
  if (values['creds-file'] !== undefined) {
    from = `--creds-file ${values['creds-file']}`;
    try {
      text = readFileSync(values['creds-file'], 'utf8').trim();
    } catch (err) {
      throw new CliError(`--creds-file: cannot read ${values['creds-file']}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else if (values.creds === '-') {
    from = '--creds - (stdin)';
    text = readFileSync(0, 'utf8').trim();
  } else {
    text = values.creds;
  }
  if (text === undefined) return undefined;
  const creds = parseCreds(text);
  // The message names where the value came from, never the value.
  if (!creds) throw new CliError(`${from} must be USER:PASS`);
  return creds;
}

const mb = (n: number) => (n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);

/** Per layer and total, redrawn in place on stderr (ANSI: up N lines, clear each). */
function progressDisplay(stream: NodeJS.WriteStream): { update(p: PullProgress): void; end(): void } {
  const layers = new Map<string, { state: string; done: number; total: number }>();
  let drawn = 0;
  let last = 0;
  let total = { done: 0, total: 0, phase: 'resolving' };
  const draw = () => {
    const lines = [...layers].map(([d, l]) => `${d.slice(7, 19)}  ${l.state.padEnd(11)} ${mb(l.done)} / ${mb(l.total)}`);
    lines.push(`total         ${total.phase.padEnd(11)} ${mb(total.done)} / ${mb(total.total)}`);
    stream.write((drawn ? `\x1b[${drawn}F` : '') + lines.map((l) => `\x1b[2K${l}\n`).join(''));
    drawn = lines.length;
  };
  return {
    update(p) {
      total = { done: p.doneBytes, total: p.totalBytes, phase: p.phase };
      if (p.layer) {
        const l = layers.get(p.layer) ?? { state: '', done: 0, total: p.layerTotal ?? 0 };
        l.state = p.phase;
        if (p.layerDone !== undefined) l.done = p.layerDone;
        if (p.layerTotal !== undefined) l.total = p.layerTotal;
        layers.set(p.layer, l);
      }
      // Redrawn at most every 100 ms: a line per chunk would cost more than the transfer.
      const now = Date.now();
      if (now - last < 100 && p.phase === 'downloading') return;
      last = now;
      draw();
    },
    end() {
      for (const l of layers.values()) l.state = 'done';
      total.phase = 'done';
      draw();
    },
  };
}

export async function pullCommand(argv: string[]): Promise<number> {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        creds: { type: 'string' },
        'creds-file': { type: 'string' },
        platform: { type: 'string' },
        'insecure-registry': { type: 'string', multiple: true },
        'ca-file': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    console.error(`faasbox image pull: ${(err as Error).message}; try: faasbox image pull --help`);
    return 2;
  }
  if (values.help) {
    console.log(PULL_HELP);
    return 0;
  }
  const json = values.json;
  const fail = (code: string, message: string): number => {
    if (json) console.error(JSON.stringify({ error: { code, message } }));
    else console.error(`faasbox image pull: ${message} [${code}]`);
    return exitCodeOf(code);
  };
  try {
    if (positionals.length !== 1) throw new CliError(`expected exactly one image reference, got ${positionals.length}; try: faasbox image pull --help`);
    const opts: PullOptions = { registries: {} };
    const creds = readCreds(values);
    if (creds) opts.creds = creds;
    if (values.platform !== undefined) {
      const p = parsePlatform(values.platform);
      if (!p) throw new CliError(`--platform must be os/arch[/variant] (e.g. linux/arm64/v8), got "${values.platform}"`);
      opts.platform = p;
    }
    if (values['insecure-registry']?.length) opts.registries!.insecure = values['insecure-registry'];
    if (values['ca-file'] !== undefined) opts.registries!.caFile = path.resolve(values['ca-file']);
    const display = !json && process.stdout.isTTY && process.stderr.isTTY ? progressDisplay(process.stderr) : undefined;
    if (display) opts.onProgress = (p) => display.update(p);
    const imagesDir = imagesDirOf(path.resolve(engineEnv().stateDir ?? DEFAULT_STATE_DIR));
    // Through the store's lock (puller.ts): a prune running meanwhile cannot take what this pull wrote.
    const r = await (await loadPuller())(imagesDir, positionals[0]!, opts);
    display?.end();
    if (json) {
      console.log(JSON.stringify({ ref: r.ref, digest: r.manifestDigest, layers: r.record.layers.length, transferredBytes: r.transferredBytes, ...(r.record.platform ? { platform: formatPlatform(r.record.platform) } : {}) }));
    } else {
      console.log(r.manifestDigest);
    }
    return 0;
  } catch (err) {
    if (err instanceof CliError) return fail('USAGE', err.message);
    if (err instanceof FaasboxError) return fail(err.code, err.message);
    return fail('INTERNAL', (err as Error).message ?? String(err));
  }
}
