import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SIZING,
  decide,
  desiredStems,
  desiredWarm,
  emptyHistory,
  observe,
  parseTargets,
  validateSizing,
  type DemandReport,
  type SizingConfig,
} from './sizing.js';

const cfg = (over: Partial<SizingConfig> = {}): SizingConfig => ({ ...DEFAULT_SIZING, ...over });

/** A demand report for one function: concurrencyMs accumulates as given. */
const report = (at: number, fns: DemandReport['functions'], stems: DemandReport['stems'] = {}): DemandReport => ({ at, functions: fns, stems });

test('desiredWarm follows average concurrency, capped by the peak, down to min after the idle TTL', () => {
  const now = 100_000;
  const c = cfg({ minWarm: 0, maxWarm: 8, idleTtlMs: 30_000, windowMs: 10_000 });
  const samples = [3, 4, 5, 4].map((n, i) => ({ at: now - 1000 * i, concurrency: n }));
  assert.equal(desiredWarm(samples, now - 100, now, c), 4);
  assert.equal(desiredWarm([{ at: now, concurrency: 50 }], now, now, c), 8, 'capped at max');
  assert.equal(desiredWarm(samples, now - 30_000, now, c), 0, 'scaled to zero when idle');
  assert.equal(desiredWarm(samples, now - 30_000, now, { ...c, minWarm: 2 }), 2);
  const old = [{ at: now - 20_000, concurrency: 9 }];
  assert.equal(desiredWarm(old, now - 100, now, c), 1, 'samples outside the window do not count');
  assert.equal(desiredWarm([2.5, 2.5].map((n) => ({ at: now, concurrency: n })), now, now, c), 3, 'fractional samples give whole containers');
});

test('desiredWarm copes with more samples than a call takes as arguments', () => {
  const now = 100_000;
  const samples = Array.from({ length: 300_000 }, (_, i) => ({ at: now - (i % 50_000), concurrency: i % 7 }));
  assert.equal(desiredWarm(samples, now, now, cfg({ maxWarm: 16 })), 3, 'average 3, peak 6');
});

test('desiredStems follows the largest recent burst of specialisations', () => {
  const now = 1_000_000;
  const c = cfg({ minStems: 1, maxStems: 10, windowMs: 60_000 });
  assert.equal(desiredStems([], now, c), 1);
  const burst = Array.from({ length: 6 }, (_, i) => now - 5000 + i * 10);
  assert.equal(desiredStems([...burst, now - 30_000], now, c), 6);
  assert.equal(desiredStems(Array.from({ length: 40 }, () => now), now, c), 10);
  assert.equal(desiredStems(burst, now + 120_000, c), 1, 'decays after the window');
});

test('observe turns the in-flight integral into the time-weighted concurrency between two reports', () => {
  const c = cfg({ windowMs: 60_000 });
  const h = emptyHistory();
  observe(h, report(1000, { 'f@1': { inflight: 0, lastInvokedAt: 900, concurrencyMs: 0 } }), {}, c);
  // Over the next second: 4 calls of 50 ms at once, nothing in flight at either report.
  observe(h, report(2000, { 'f@1': { inflight: 0, lastInvokedAt: 1500, concurrencyMs: 200 } }), {}, c);
  // Over the next: 3 in flight all along.
  observe(h, report(3000, { 'f@1': { inflight: 3, lastInvokedAt: 2000, concurrencyMs: 3200 } }), {}, c);
  assert.deepEqual(h.functions.get('f@1')!.samples, [
    { at: 1000, concurrency: 0 },
    { at: 2000, concurrency: 0.2 },
    { at: 3000, concurrency: 3 },
  ]);
  assert.equal(decide(h, 3000, c).functions['f@1'], 2, 'ceil of the average (3.2 / 3)');
});

test('observe adds queued invocations, ignores a report it has seen, and forgets what is no longer reported', () => {
  const c = cfg({ windowMs: 60_000 });
  const h = emptyHistory();
  const first = report(1000, { 'f@1': { inflight: 2, lastInvokedAt: 1000, concurrencyMs: 0 }, 'g@1': { inflight: 0, lastInvokedAt: 0, concurrencyMs: 0 } });
  observe(h, first, { 'f@1': 3, 'h@1': 7 }, c);
  assert.deepEqual(h.functions.get('f@1')!.samples, [{ at: 1000, concurrency: 5 }], 'first sight: in flight now, plus queued');
  assert.equal(h.functions.has('h@1'), false, 'queued work of a function the worker does not know sizes nothing');
  observe(h, first, { 'f@1': 3 }, c);
  assert.equal(h.functions.get('f@1')!.samples.length, 1, 'the same report twice is one sample');
  observe(h, report(2000, { 'f@1': { inflight: 0, lastInvokedAt: 1000, concurrencyMs: 0 } }), {}, c);
  assert.equal(h.functions.has('g@1'), false, 'g@1 dropped from the report, dropped from the history');
  assert.deepEqual(h.functions.get('f@1')!.samples.at(-1), { at: 2000, concurrency: 0 }, 'an integral that went back (worker restarted) counts as in flight now');
});

test('observe keeps only samples and specialisations inside the window', () => {
  const c = cfg({ windowMs: 5000 });
  const h = emptyHistory();
  for (let at = 1000; at <= 10_000; at += 1000) {
    observe(h, report(at, { 'f@1': { inflight: 1, lastInvokedAt: at, concurrencyMs: at } }, { 'nodejs20/128': [at - 10] }), {}, c);
  }
  assert.deepEqual(h.functions.get('f@1')!.samples.map((s) => s.at), [5000, 6000, 7000, 8000, 9000, 10_000]);
  assert.deepEqual(h.stems.get('nodejs20/128'), [5990, 6990, 7990, 8990, 9990]);
});

test('observe merges specialisation times across overlapping reports without counting one twice', () => {
  const c = cfg({ windowMs: 60_000, minStems: 1, maxStems: 10 });
  const h = emptyHistory();
  observe(h, report(1000, {}, { 'nodejs20/128': [900, 910, 920] }), {}, c);
  // The next report repeats the last seconds and adds a fourth of the same burst.
  observe(h, report(1200, {}, { 'nodejs20/128': [910, 900, 920, 1100] }), {}, c);
  assert.deepEqual(h.stems.get('nodejs20/128'), [900, 910, 920, 1100]);
  assert.deepEqual(decide(h, 1200, c).stems, { 'nodejs20/128': 4 });
  observe(h, report(1400, {}, {}), {}, c);
  assert.deepEqual(decide(h, 1400, c).stems, {}, 'a shape the worker no longer keeps gets no target');
});

test('decide: shapes without demand get minStems; an idle function drops to minWarm after the TTL', () => {
  const c = cfg({ minWarm: 1, maxWarm: 4, idleTtlMs: 10_000, minStems: 2, maxStems: 5, windowMs: 60_000, scaleDownDelayMs: 300 });
  const h = emptyHistory();
  observe(h, report(1000, { 'f@1': { inflight: 4, lastInvokedAt: 1000, concurrencyMs: 0 } }, { 'nodejs20/128': [] }), {}, c);
  assert.deepEqual(decide(h, 1000, c), { at: 1000, functions: { 'f@1': 4 }, stems: { 'nodejs20/128': 2 }, scaleDownDelayMs: 300, idleTtlMs: 10_000 });
  assert.deepEqual(decide(h, 11_000, c).functions, { 'f@1': 1 }, 'scaled down to minWarm, not zero');
});

test('parseTargets accepts what decide writes and nothing malformed', () => {
  const t = decide(emptyHistory(), 5, cfg());
  assert.deepEqual(parseTargets(JSON.stringify(t)), t);
  assert.equal(parseTargets(null), undefined);
  assert.equal(parseTargets('{'), undefined);
  assert.equal(parseTargets(JSON.stringify({ ...t, functions: { 'f@1': -1 } })), undefined);
  assert.equal(parseTargets(JSON.stringify({ ...t, at: 'now' })), undefined);
  assert.equal(parseTargets(JSON.stringify({ at: 5, functions: {}, stems: {} })), undefined);
});

test('validateSizing rejects a floor above its ceiling and negative values', () => {
  assert.throws(() => validateSizing(cfg({ minWarm: 5, maxWarm: 2 })), { code: 'INVALID_SIZING' });
  assert.throws(() => validateSizing(cfg({ minStems: 3, maxStems: 1 })), { code: 'INVALID_SIZING' });
  assert.throws(() => validateSizing(cfg({ idleTtlMs: -1 })), { code: 'INVALID_SIZING' });
  assert.doesNotThrow(() => validateSizing(cfg()));
});
