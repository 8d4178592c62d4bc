/**
 * A function's isolation options (common/isolation-spec.ts) as the worker's pool and
 * engine take them: the one conversion of those deploy fields, for the FunctionSpec ->
 * container conversion to call.
 */
import type { FunctionSpec } from '../../common/function-spec.js';
import type { IoLimits } from '../engine/spec.js';

export interface IsolationOptions {
  /** Block I/O limits, written before the function's code runs (at boot or specialisation). */
  io?: IoLimits;
  /** A user namespace of its own; absent: the worker's default (FAASBOX_USERNS). */
  userns?: boolean;
}

export function isolationOptions(spec: Pick<FunctionSpec, 'io' | 'userns'>): IsolationOptions {
  return { ...(spec.io ? { io: { ...spec.io } } : {}), ...(spec.userns !== undefined ? { userns: spec.userns } : {}) };
}

/** An invocation's block I/O for its record and metrics: only the counts it has. */
export function ioUsageOf(outcome: { ioReadBytes?: number | undefined; ioWriteBytes?: number | undefined }): { ioReadBytes?: number; ioWriteBytes?: number } {
  return {
    ...(outcome.ioReadBytes !== undefined ? { ioReadBytes: outcome.ioReadBytes } : {}),
    ...(outcome.ioWriteBytes !== undefined ? { ioWriteBytes: outcome.ioWriteBytes } : {}),
  };
}
