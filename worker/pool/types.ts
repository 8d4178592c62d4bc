/** The pool's public shapes: its options, what it is asked for (a target) and what it gives (a lease). */
import type { NetworkSpec } from '../engine/spec.js';
import type { Engine } from '../engine/engine.js';
import type { RuntimeInstance, RuntimeImage } from '../instance/instance.js';
import type { FunctionLimits } from '../instance/specconv.js';
import type { PoolTargets } from '../../common/policy/sizing.js';
import type { Isolation, SizingConfig, Slot, StartKind } from './policy.js';
import type { InstanceFactory, PooledInstance } from './instances.js';

/**
 * An idle function container is frozen this long after its invocation ends (OpenWhisk's
 * pauseGrace is 50 ms too): back-to-back invocations never pay a thaw, and a busy child
 * left behind gets at most this much CPU after the answer.
 */
export const DEFAULT_FREEZE_GRACE_MS = 50;

export interface PoolOptions<I extends PooledInstance = RuntimeInstance> {
  /** Where containers come from: the engine and an image per runtime, or any InstanceFactory (a fake in tests). */
  engine?: Engine;
  images?: Record<string, RuntimeImage>;
  instances?: InstanceFactory<I>;
  /** Memory the pool may commit to containers (sum of their limits). */
  budgetMb: number;
  /** false: no stem cells, no reuse; every invocation boots a container (the cold floor). */
  enabled: boolean;
  sizing?: Partial<SizingConfig>;
  /** Shapes kept as stem cells from the start. */
  stemShapes?: { runtime: string; memoryMb: number }[];
  /** CPU (cores) given to a container while it boots as a stem cell, before it is specialised. */
  bootCpus?: number;
  onEvent?: (e: PoolEvent) => void;
  /**
   * The latest sizing decision the scheduler made for this pool (polled off the request
   * path, e.g. worker/report.ts's TargetsFeed). Unset: the pool always sizes itself.
   */
  targets?: () => PoolTargets | undefined;
  /** Targets older than this are ignored (the scheduler is gone) and the pool sizes itself. */
  targetsMaxAgeMs?: number;
  /** Where the pool says which sizing it follows (default: stderr). */
  log?: (line: string) => void;
  /** Idle function containers are frozen after this long (default DEFAULT_FREEZE_GRACE_MS); 0: never frozen. */
  freezeGraceMs?: number;
  /** Whether the engine gives containers a user namespace by default (the worker's FAASBOX_USERNS): stem cells are made so. */
  usernsByDefault?: boolean;
  /**
   * Whether bridge functions take stem cells made with their network (the engine has its
   * bridge network: Engine.hasNetwork). false: their containers are booted for them.
   */
  bridgeStems?: boolean;
}

export type EvictReason = 'budget' | 'idle' | 'fresh' | 'crashed' | 'deleted';

export type PoolEvent =
  | { type: 'created'; runtime: string; ms: number }
  | { type: 'specialized'; runtime: string }
  | { type: 'evicted'; reason: EvictReason }
  | { type: 'boot-failed'; runtime: string; error: string };

export interface FunctionTarget {
  /** name@version */
  key: string;
  name: string;
  runtime: string;
  /** The shape's memory: limits.memoryMb. */
  memoryMb: number;
  limits: FunctionLimits;
  isolation: Isolation;
  codeDir: string;
  entry: string;
  handler: string;
  env: Record<string, string>;
  /** How long the function's module may take to load (its top level run) before the container is killed. */
  loadTimeoutMs: number;
  /** A user namespace of its own (instance/isolation.ts); absent: the worker's default. */
  userns?: boolean;
  /** Bridge mode (instance/network.ts); absent: none, loopback only. */
  network?: NetworkSpec;
}

export interface Lease<I extends PooledInstance = RuntimeInstance> {
  instance: I;
  startKind: StartKind;
  /**
   * Time spent making the container ready for this invocation up to the load request
   * (boot, limits); the load itself is still in flight in `loading`.
   */
  initMs: number;
  /** Time spent thawing the container (a warm one frozen while idle); absent when there was no thaw. */
  thawMs?: number;
  /**
   * The function's load, for specialised and cold starts: sent, not awaited, so the
   * invocation's request follows it down the pipe without a round trip in between.
   * Hand it to RuntimeInstance.invoke as afterLoad.
   */
  loading?: Promise<void>;
  slot: Slot;
  target: FunctionTarget;
}

export class NoCapacityError extends Error {
  readonly code = 'NO_CAPACITY';
  constructor(needMb: number, budgetMb: number) {
    super(`no capacity: ${needMb} MB more would exceed the worker's memory budget of ${budgetMb} MB with every container busy`);
    this.name = 'NoCapacityError';
  }
}
