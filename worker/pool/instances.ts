/**
 * What the pool needs of a container and where it gets one: an interface, so that the
 * pool's logic runs against a fake in its unit tests (pool.test.ts: no root, no kernel),
 * as youki's Syscall trait lets container setup be tested without one.
 */
import type { NetworkSpec } from '../engine/spec.js';
import type { Engine } from '../engine/engine.js';
import { RuntimeInstance, type LoadRequest, type RuntimeImage } from '../instance/instance.js';
import type { ContainerLimits, FunctionLimits } from '../instance/specconv.js';

/** The part of RuntimeInstance the pool uses. */
export interface PooledInstance {
  readonly id: string;
  readonly alive: boolean;
  /** Settles when the container's runtime has exited. */
  readonly exited: Promise<unknown>;
  /** The limits in force. */
  readonly limits: FunctionLimits;
  setLimits(part: Partial<ContainerLimits>, to: FunctionLimits): void;
  beginLoad(fnKey: string, hostCodeDir: string, req: Omit<LoadRequest, 'codeDir'>, timeoutMs?: number): Promise<void>;
  /** Thaws a frozen container (returns the thaw's ms), or cancels a pending freeze. */
  wake(): number | undefined;
  freezeAfter(graceMs: number, onFailure?: (err: Error) => void): void;
  thawIfKilled(): boolean;
  /** A bridge stem cell takes a function's egress and bandwidth (a promise only when `tc` must run). */
  setNetwork(spec: NetworkSpec): Promise<void> | undefined;
  kill(): Promise<void>;
  destroy(): Promise<void>;
}

/** What a function's own container has that a stem cell has not. */
export interface OwnBoot {
  userns?: boolean;
  network?: NetworkSpec;
}

export interface InstanceFactory<I extends PooledInstance> {
  /** Boots a runtime of `runtime` under `limits`; warmUp false when a load follows at once. */
  boot(runtime: string, limits: FunctionLimits, warmUp: boolean, own?: OwnBoot): Promise<I>;
}

/** The real thing: RuntimeInstance on the engine, one image per runtime. */
export function engineInstances(engine: Engine, images: Record<string, RuntimeImage>): InstanceFactory<RuntimeInstance> {
  return {
    boot(runtime, limits, warmUp, own = {}) {
      const image = images[runtime];
      if (!image) return Promise.reject(new Error(`no image for runtime ${runtime}`));
      return RuntimeInstance.boot(engine, { image, limits, warmUp, ...own });
    },
  };
}
