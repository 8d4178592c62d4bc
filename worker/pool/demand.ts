/**
 * The pool's demand accounting: invocations in flight per function (and their integral
 * over time), when each function was last invoked, and when invocations wanted a stem cell
 * of a shape. It is what the pool reports for the scheduler to size it
 * (common/policy/sizing.ts), and what the pool sizes itself from without one.
 */
import type { DemandReport } from '../../common/policy/sizing.js';
import { shapeKey } from '../../common/keys.js';

/** How far back a demand report lists specialisation times; the scheduler keeps its own window. */
const STEM_REPORT_HORIZON_MS = 10_000;
/** At most this many times per shape in a report: more in the horizon than any sane maxStems. */
const STEM_REPORT_MAX_TIMES = 256;

export interface FnDemand {
  inflight: number;
  lastInvokedAt: number;
  /** Integral of inflight over time up to changedAt (see FunctionDemand.concurrencyMs). */
  concurrencyMs: number;
  changedAt: number;
}

export interface Shape {
  runtime: string;
  memoryMb: number;
}

export class Demand {
  readonly functions = new Map<string, FnDemand>();
  /** Shapes kept as stem cells: the configured ones, and every shape an invocation wanted. */
  readonly shapes = new Map<string, Shape>();
  /** Times at which an invocation wanted a stem cell of a shape (specialised or cold). */
  private readonly stemTimes = new Map<string, number[]>();
  /** Invocations holding a lease right now, over all functions. */
  inflightTotal = 0;

  /** onQuiet: called when the last invocation in flight ends. */
  constructor(
    private readonly windowMs: number,
    shapes: readonly Shape[],
    private readonly onQuiet: () => void,
  ) {
    for (const s of shapes) this.shapes.set(shapeKey(s.runtime, s.memoryMb), s);
  }

  /** An invocation of fn starts waiting for, or holding, a container. */
  begin(fn: string): void {
    let d = this.functions.get(fn);
    if (!d) {
      d = { inflight: 0, lastInvokedAt: Date.now(), concurrencyMs: 0, changedAt: Date.now() };
      this.functions.set(fn, d);
    }
    this.change(d, +1);
    d.lastInvokedAt = Date.now();
  }

  /** ...and ends (released, or gave up). A function forgotten meanwhile (dropped) is ignored. */
  end(fn: string): void {
    const d = this.functions.get(fn);
    if (d) this.change(d, -1);
  }

  /** An invocation wanted a stem cell of this shape (specialised or cold): the shape is kept from now on. */
  wantedStem(shape: Shape): void {
    const key = shapeKey(shape.runtime, shape.memoryMb);
    this.shapes.set(key, { runtime: shape.runtime, memoryMb: shape.memoryMb });
    const times = this.stemTimes.get(key) ?? [];
    const now = Date.now();
    times.push(now);
    while (times.length && now - times[0]! > this.windowMs) times.shift();
    this.stemTimes.set(key, times);
  }

  /** Forgets every function whose key starts with prefix (deleted or updated). */
  forget(prefix: string): void {
    for (const key of [...this.functions.keys()]) if (key.startsWith(prefix)) this.functions.delete(key);
  }

  report(now = Date.now()): DemandReport {
    const functions: DemandReport['functions'] = {};
    for (const [key, d] of this.functions) {
      functions[key] = { inflight: d.inflight, lastInvokedAt: d.lastInvokedAt, concurrencyMs: d.concurrencyMs + d.inflight * (now - d.changedAt) };
    }
    const stems: DemandReport['stems'] = {};
    for (const key of this.shapes.keys()) {
      stems[key] = (this.stemTimes.get(key) ?? []).filter((t) => now - t <= STEM_REPORT_HORIZON_MS).slice(-STEM_REPORT_MAX_TIMES);
    }
    return { at: now, functions, stems };
  }

  private change(d: FnDemand, by: number): void {
    const now = Date.now();
    d.concurrencyMs += d.inflight * (now - d.changedAt);
    d.changedAt = now;
    d.inflight += by;
    this.inflightTotal += by;
    if (this.inflightTotal === 0) this.onQuiet();
  }
}
