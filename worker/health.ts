/**
 * What a standalone worker answers on /healthz and /readyz (cli/metrics-server.ts), for a
 * Kubernetes DaemonSet's probes.
 *
 * Live: the process answers and its Redis answers a PING in time; without Redis it can
 * neither take jobs nor report them. Ready: every stem shape it starts with has booted
 * its first stem cell (a runtime that cannot boot makes every invocation fail), and both
 * of its consumers run; never again once it drains for a stop.
 */
import type { Redis } from 'ioredis';
import { shapeKey } from '../common/keys.js';
import type { Slot } from './pool/policy.js';

/** A PING slower than this counts as Redis unreachable (a healthy one answers in well under 1 ms here). */
export const REDIS_PING_TIMEOUT_MS = 2000;

export interface HealthReport {
  ok: boolean;
  redis: 'ok' | string;
}

export interface ReadinessReport {
  ready: boolean;
  /** Why not, when not ready. */
  reason?: string;
}

export interface HealthSources {
  redis: Redis;
  /** The pool's slots now. */
  slots: () => Slot[];
  /** The shapes whose first stem cells readiness waits for (none when pools are off). */
  stemShapes: readonly { runtime: string; memoryMb: number }[];
  /** Whether each consumer takes jobs. */
  consuming: () => boolean;
}

export class WorkerHealth {
  /** Shapes whose first stem cell has not been seen idle yet. */
  private readonly waiting: Set<string>;
  private stopping = false;

  constructor(private readonly src: HealthSources) {
    this.waiting = new Set(src.stemShapes.map((s) => shapeKey(s.runtime, s.memoryMb)));
  }

  /** Looks for first stem cells; called on pool events, so that one specialised right away still counts. */
  observe(): void {
    if (this.waiting.size === 0) return;
    for (const s of this.src.slots()) if (s.kind === 'stem' && s.state === 'idle') this.waiting.delete(shapeKey(s.runtime, s.memoryMb));
  }

  /** From here on the worker is not ready: it drains for a stop. */
  markStopping(): void {
    this.stopping = true;
  }

  readiness(): ReadinessReport {
    if (this.stopping) return { ready: false, reason: 'stopping: draining its invocations' };
    this.observe();
    if (this.waiting.size > 0) return { ready: false, reason: `starting: no stem cell booted yet for ${[...this.waiting].sort().join(', ')}` };
    if (!this.src.consuming()) return { ready: false, reason: 'not consuming its queues' };
    return { ready: true };
  }

  async health(): Promise<HealthReport> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no PING reply within ${REDIS_PING_TIMEOUT_MS} ms`)), REDIS_PING_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.src.redis.ping(), late]);
      return { ok: true, redis: 'ok' };
    } catch (err) {
      return { ok: false, redis: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}
