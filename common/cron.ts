/**
 * Schedules of cron triggers: 5-field cron (minutes), 6-field cron (seconds first), and
 * `@every <duration>` (`@every 30s`, `@every 1m30s`, `@every 500ms` is refused: 1 s is the
 * finest). Cron fields are parsed by croner (MIT, no dependencies), which handles the
 * timezone's DST gaps and repeats; this module fixes the accepted forms and turns its
 * failures into messages that name the problem.
 *
 * Every process computes the same tick times from the same schedule (`@every` ticks are
 * multiples of the interval since the epoch, not "interval after I started"), because the
 * per-tick lock that makes a tick fire once is keyed by the tick's time.
 */
import { Cron } from 'croner';

export const MIN_EVERY_MS = 1000;
export const MAX_EVERY_MS = 7 * 24 * 3600_000;

export type Schedule = { kind: 'cron'; expression: string; timezone: string; cron: Cron } | { kind: 'every'; everyMs: number };

export class ScheduleError extends Error {
  constructor(
    message: string,
    readonly field: 'schedule' | 'timezone',
  ) {
    super(message);
    this.name = 'ScheduleError';
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000 };

/** "1m30s" -> 90000; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}

export function isTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export function parseSchedule(expression: string, timezone = 'UTC'): Schedule {
  if (!isTimezone(timezone)) throw new ScheduleError(`unknown timezone ${JSON.stringify(timezone)} (an IANA name such as "UTC" or "Europe/Paris")`, 'timezone');
  const text = expression.trim();
  if (text.startsWith('@every')) {
    const d = text.slice('@every'.length).trim();
    const everyMs = parseDuration(d);
    if (everyMs === undefined) throw new ScheduleError(`"@every ${d}" is not a duration such as 30s, 5m or 1h30m`, 'schedule');
    if (everyMs < MIN_EVERY_MS || everyMs > MAX_EVERY_MS) throw new ScheduleError(`@every must be between 1s and 168h, got ${d}`, 'schedule');
    return { kind: 'every', everyMs };
  }
  if (text.startsWith('@')) throw new ScheduleError(`unknown shorthand ${JSON.stringify(text)}: use 5 or 6 cron fields or "@every <duration>"`, 'schedule');
  const fields = text.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) throw new ScheduleError(`a cron schedule has 5 fields (minute first) or 6 (second first), got ${fields}`, 'schedule');
  let cron: Cron;
  try {
    // Standard cron: a day matches when day-of-month OR day-of-week does (domAndDow false).
    cron = new Cron(text, { timezone, paused: true, mode: fields === 5 ? '5-part' : '6-part', domAndDow: false });
  } catch (err) {
    throw new ScheduleError(`invalid cron schedule ${JSON.stringify(text)}: ${(err as Error).message}`, 'schedule');
  }
  if (cron.nextRun(new Date()) === null) throw new ScheduleError(`cron schedule ${JSON.stringify(text)} never fires`, 'schedule');
  return { kind: 'cron', expression: text, timezone, cron };
}

/** The first tick strictly after `afterMs` (epoch ms), or undefined if there is none. */
export function nextTick(schedule: Schedule, afterMs: number): number | undefined {
  if (schedule.kind === 'every') return (Math.floor(afterMs / schedule.everyMs) + 1) * schedule.everyMs;
  // croner looks from the next whole second after the date it is given.
  const next = schedule.cron.nextRun(new Date(afterMs));
  return next ? next.getTime() : undefined;
}

/** The last tick at or before `atMs` and after `sinceMs` (a catch-up run's time), if any. */
export function lastTickAtOrBefore(schedule: Schedule, atMs: number, sinceMs: number): number | undefined {
  let last: number | undefined;
  if (schedule.kind === 'every') last = Math.floor(atMs / schedule.everyMs) * schedule.everyMs;
  else {
    // previousRuns looks strictly before its reference: 1 ms later includes atMs itself.
    const prev = schedule.cron.previousRuns(1, new Date(atMs + 1))[0];
    last = prev?.getTime();
  }
  return last !== undefined && last > sinceMs ? last : undefined;
}
