/**
 * How the CLI tells an error: one line on stderr (JSON with --json), and an exit code. The
 * command dispatcher (main.ts) uses it for whatever a command throws; commands with codes
 * of their own (image: image-exit.ts) use it before returning theirs.
 */
export function printError(err: unknown, json = process.argv.includes('--json')): void {
  const e = err as { code?: string; message?: string };
  if (json) {
    console.error(JSON.stringify({ error: { code: e.code ?? 'INTERNAL', message: e.message ?? String(err) } }));
  } else {
    console.error(`faasbox: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}`);
  }
}

const USAGE_CODES = new Set(['USAGE', 'ERR_PARSE_ARGS_UNKNOWN_OPTION', 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE', 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL']);

/** 2 for a usage error, 1 for anything else. */
export function exitCodeOf(err: unknown): number {
  return USAGE_CODES.has((err as { code?: string }).code ?? '') ? 2 : 1;
}
