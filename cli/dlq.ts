/**
 * `faasbox dlq ls|show|redrive|purge`: a function's dead letters (gateway/README.md,
 * "Asynchronous delivery"), over the gateway's API.
 */
import { parseArgs } from 'node:util';
import { CliError, parseNumber } from './args.js';
import { call, json } from './client.js';
import type { DeadLetter } from '../common/delivery/dead-letters.js';

const HELP = `Usage: faasbox dlq <command> FUNCTION [options]

Commands:
  ls FUNCTION [--limit N] [--cursor C] [--all]   list dead letters, oldest first (--all: every page)
  show FUNCTION ID                               one dead letter: event, error, attempts
  redrive FUNCTION (--all | ID...) [--version V] run them again as new async invocations
                                                 (to the current version, or V)
  purge FUNCTION (--all | ID...)                 discard them

Every command takes --json (the gateway's JSON answer).`;

const SUB_HELP: Record<string, string> = {
  ls: 'Usage: faasbox dlq ls FUNCTION [--limit N] [--cursor C] [--all] [--json]',
  show: 'Usage: faasbox dlq show FUNCTION ID [--json]',
  redrive: 'Usage: faasbox dlq redrive FUNCTION (--all | ID...) [--version sha256:...] [--json]',
  purge: 'Usage: faasbox dlq purge FUNCTION (--all | ID...) [--json]',
};

const base = (fn: string) => `/v1/functions/${encodeURIComponent(fn)}/dead-letters`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help') {
    console.log(HELP);
    return cmd ? 0 : 2;
  }
  if (!SUB_HELP[cmd]) throw new CliError(`unknown dlq command "${cmd}"; see faasbox dlq --help`);
  if (rest.includes('-h') || rest.includes('--help')) {
    console.log(SUB_HELP[cmd]);
    return 0;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, all: { type: 'boolean' }, limit: { type: 'string' }, cursor: { type: 'string' }, version: { type: 'string' } },
  });
  const [fn, ...ids] = positionals;
  if (!fn) throw new CliError(`dlq ${cmd} needs a function name; see faasbox dlq ${cmd} --help`);
  const out = (data: unknown) => console.log(JSON.stringify(data));
  switch (cmd) {
    case 'ls': {
      const entries: DeadLetter[] = [];
      let cursor = values.cursor;
      let page: { total: number; deadLetters: DeadLetter[]; nextCursor?: string };
      do {
        const q = new URLSearchParams({ limit: String(values.limit ? parseNumber('--limit', values.limit, 'whole') : 100), ...(cursor ? { cursor } : {}) });
        page = (await json(await call('GET', `${base(fn)}?${q}`))) as typeof page;
        entries.push(...page.deadLetters);
        cursor = page.nextCursor;
      } while (values.all && cursor);
      if (values.json) out({ ...page, deadLetters: entries });
      else {
        console.log(`${'ID'.padEnd(38)} ${'ATTEMPTS'.padEnd(8)} ${'LAST ATTEMPT'.padEnd(24)} ERROR`);
        for (const e of entries) console.log(`${e.id.padEnd(38)} ${String(e.attempts).padEnd(8)} ${e.lastAttemptAt.padEnd(24)} ${e.error.code}: ${e.error.message.split('\n')[0]}`);
        console.log(`${entries.length} of ${page.total} dead letters${cursor ? `; more with --cursor ${cursor}` : ''}`);
      }
      return 0;
    }
    case 'show': {
      if (ids.length !== 1) throw new CliError('dlq show needs one dead letter id');
      const e = await json(await call('GET', `${base(fn)}/${encodeURIComponent(ids[0]!)}`));
      console.log(values.json ? JSON.stringify(e) : JSON.stringify(e, null, 2));
      return 0;
    }
    case 'redrive': {
      const body = { ...selection(values.all, ids, 'redrive'), ...(values.version ? { version: values.version } : {}) };
      const r = (await json(await call('POST', `${base(fn)}/redrive`, body))) as { redriven: { id: string; invocationId: string }[]; notRedriven: { id: string; error: { code: string; message: string } }[] };
      if (values.json) out(r);
      else {
        for (const x of r.redriven) console.log(`${x.id} -> invocation ${x.invocationId}`);
        for (const x of r.notRedriven) process.stderr.write(`${x.id}: ${x.error.code}: ${x.error.message}\n`);
        console.log(`redriven ${r.redriven.length}, not redriven ${r.notRedriven.length}`);
      }
      return r.notRedriven.length ? 1 : 0;
    }
    case 'purge': {
      const sel = selection(values.all, ids, 'purge');
      const r = (await json(await call('DELETE', sel.ids ? `${base(fn)}?ids=${sel.ids.map(encodeURIComponent).join(',')}` : base(fn)))) as { deleted: number };
      if (values.json) out(r);
      else console.log(`deleted ${r.deleted} dead letters of ${fn}`);
      return 0;
    }
  }
  return 2;
}

function selection(all: boolean | undefined, ids: string[], cmd: string): { all: true; ids?: undefined } | { ids: string[]; all?: undefined } {
  if (all && ids.length) throw new CliError(`dlq ${cmd}: give --all or ids, not both`);
  if (all) return { all: true };
  if (!ids.length) throw new CliError(`dlq ${cmd} needs --all or at least one id`);
  return { ids };
}
