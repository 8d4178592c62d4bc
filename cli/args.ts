/** A usage error: the CLI prints the message and exits 2. */
export class CliError extends Error {
  readonly code = 'USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * Whether a command's arguments ask for its help (-h or --help before any "--": what
 * follows "--" is another program's). Checked before anything else, so that asking for
 * help never runs the command.
 */
export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '-h' || a === '--help');
}

/** What a numeric flag or setting accepts: any number >= 0, any number > 0, or 0, 1, 2, ... */
export type NumberRule = 'non-negative' | 'positive' | 'whole';

/** A number given as a flag or in the environment; a CliError naming it and the rule otherwise. */
export function parseNumber(name: string, v: string, rule: NumberRule = 'non-negative'): number {
  const text = v.trim();
  const n = text === '' || (rule === 'whole' && !/^\d+$/.test(text)) ? NaN : Number(text);
  if (!Number.isFinite(n) || n < 0 || (rule === 'positive' && n === 0)) {
    throw new CliError(`${name} must be ${rule === 'whole' ? 'a whole number' : `a ${rule} number`}, got "${v}"`);
  }
  return n;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** "32m", "1g", "4096" -> bytes. */
export function parseBytes(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new CliError(`${flag} must be a size like 64m or 1g, got "${v}"`);
  const n = Math.round(Number(m[1]) * unit);
  if (n <= 0) throw new CliError(`${flag} must be positive, got "${v}"`);
  return n;
}
