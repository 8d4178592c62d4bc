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
  /** Bridge stem cells: made with their network (absent: none). */
  network?: 'bridge';
}

const keyOf = (s: Shape): string => shapeKey(s.runtime, s.memoryMb, s.network);

export class Demand {
  readonly functions = new Map<string, FnDemand>();
  /** Shapes kept as stem cells: the configured ones, and every shape an invocation wanted. */
  readonly shapes = new Map<string, Shape>();
  /** Times at which an invocation wanted a stem cell of a shape (specialised or cold). */
  private readonly stemTimes = new Map<string, number[]>();
  /**
   * Per bridge shape, the functions (name@version) that want it: deployed or invoked.
   * A bridge shape is kept only while one is known, so a worker whose functions are
   * all `none` keeps no bridge stem cell (each holds an address, a veth, a lease).
   */
  private readonly bridgeUsers = new Map<string, Set<string>>();
  /** Invocations holding a lease right now, over all functions. */
  inflightTotal = 0;

  /** onQuiet: called when the last invocation in flight ends. */
  constructor(
    private readonly windowMs: number,
    shapes: readonly Shape[],
    private readonly onQuiet: () => void,
  ) {
    for (const s of shapes) this.shapes.set(keyOf(s), s);
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

  /**
   * A function of this shape exists (a bridge function deployed): its shape is kept, with
   * no specialisation counted, so its first invocation finds a stem cell made for it.
   */
  expect(shape: Shape, fn: string): void {
    const key = keyOf(shape);
    if (!this.shapes.has(key)) this.shapes.set(key, copy(shape));
    if (shape.network === 'bridge') this.bridgeUsers.set(key, (this.bridgeUsers.get(key) ?? new Set()).add(fn));
  }

  /** An invocation of fn wanted a stem cell of this shape (specialised or cold): the shape is kept from now on (a bridge one while fn is known). */
  wantedStem(shape: Shape, fn?: string): void {
    const key = keyOf(shape);
    if (fn !== undefined) this.expect(shape, fn);
    else this.shapes.set(key, copy(shape));
    const times = this.stemTimes.get(key) ?? [];
    const now = Date.now();
    times.push(now);
    while (times.length && now - times[0]! > this.windowMs) times.shift();
    this.stemTimes.set(key, times);
  }

  /** Forgets every function whose key starts with prefix (deleted or updated), and the bridge shapes no function wants any more. */
  forget(prefix: string): void {
    for (const key of [...this.functions.keys()]) if (key.startsWith(prefix)) this.functions.delete(key);
    for (const [shape, users] of this.bridgeUsers) {
      for (const fn of [...users]) if (fn.startsWith(prefix)) users.delete(fn);
      if (users.size === 0) {
        this.bridgeUsers.delete(shape);
        this.shapes.delete(shape);
        this.stemTimes.delete(shape);
      }
    }
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

  /** Whether stem cells of this shape are kept. */
  keeps(shape: Shape): boolean {
    return this.shapes.has(keyOf(shape));
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

const copy = (s: Shape): Shape => ({ runtime: s.runtime, memoryMb: s.memoryMb, ...(s.network ? { network: s.network } : {}) });
