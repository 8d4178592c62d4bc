import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastTickAtOrBefore, nextTick, parseDuration, parseSchedule, ScheduleError } from './cron.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

test('5-field cron ticks on minutes, 6-field on seconds', () => {
  const five = parseSchedule('*/15 * * * *');
  assert.equal(iso(nextTick(five, at('2026-03-01T10:07:30Z'))), '2026-03-01T10:15:00.000Z');
  const six = parseSchedule('*/2 * * * * *');
  assert.equal(iso(nextTick(six, at('2026-03-01T10:07:30.400Z'))), '2026-03-01T10:07:32.000Z');
  // Strictly after: a tick exactly now is not the next one.
  assert.equal(iso(nextTick(six, at('2026-03-01T10:07:32.000Z'))), '2026-03-01T10:07:34.000Z');
});

test('a timezone moves the tick, DST included', () => {
  const nineParis = parseSchedule('0 9 * * *', 'Europe/Paris');
  // Winter: UTC+1; summer (after 2026-03-29): UTC+2.
  assert.equal(iso(nextTick(nineParis, at('2026-03-01T00:00:00Z'))), '2026-03-01T08:00:00.000Z');
  assert.equal(iso(nextTick(nineParis, at('2026-04-01T00:00:00Z'))), '2026-04-01T07:00:00.000Z');
  const utc = parseSchedule('0 9 * * *');
  assert.equal(iso(nextTick(utc, at('2026-04-01T00:00:00Z'))), '2026-04-01T09:00:00.000Z');
});

test('@every ticks on multiples of the interval since the epoch, the same in every process', () => {
  const s = parseSchedule('@every 30s');
  assert.deepEqual(s.kind === 'every' && s.everyMs, 30_000);
  assert.equal(iso(nextTick(s, at('2026-03-01T10:00:10Z'))), '2026-03-01T10:00:30.000Z');
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1h'), 3600_000);
  assert.equal(parseDuration('30'), undefined);
});

test('the last tick before a moment, for a catch-up run, only after the given start', () => {
  const six = parseSchedule('*/10 * * * * *');
  assert.equal(iso(lastTickAtOrBefore(six, at('2026-03-01T10:00:25Z'), at('2026-03-01T10:00:00Z'))), '2026-03-01T10:00:20.000Z');
  assert.equal(iso(lastTickAtOrBefore(six, at('2026-03-01T10:00:20Z'), at('2026-03-01T10:00:00Z'))), '2026-03-01T10:00:20.000Z');
  assert.equal(lastTickAtOrBefore(six, at('2026-03-01T10:00:25Z'), at('2026-03-01T10:00:20Z')), undefined);
  const every = parseSchedule('@every 1m');
  assert.equal(iso(lastTickAtOrBefore(every, at('2026-03-01T10:05:30Z'), at('2026-03-01T10:00:00Z'))), '2026-03-01T10:05:00.000Z');
});

test('bad schedules and timezones are refused with the field and the reason', () => {
  const refused = (expr: string, tz?: string) => {
    try {
      parseSchedule(expr, tz);
    } catch (err) {
      assert.ok(err instanceof ScheduleError);
      return { field: err.field, message: err.message };
    }
    assert.fail(`${expr} was accepted`);
  };
  assert.equal(refused('* * *').field, 'schedule');
  assert.match(refused('* * *').message, /5 fields .* or 6/);
  assert.equal(refused('* * * * * * *').field, 'schedule');
  assert.equal(refused('61 * * * *').field, 'schedule');
  assert.equal(refused('@every soon').field, 'schedule');
  assert.match(refused('@every 100ms').message, /between 1s/);
  assert.equal(refused('@hourly').field, 'schedule');
  assert.equal(refused('0 0 30 2 *').field, 'schedule', 'February 30th never comes');
  assert.equal(refused('* * * * *', 'Mars/Olympus').field, 'timezone');
});
