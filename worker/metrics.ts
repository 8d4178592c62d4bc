/**
 * The worker's Prometheus metrics: cold-start latency by start kind and runtime, pool
 * sizes by state, specialisations, evictions, and per-function CPU seconds and peak
 * memory as read from each container's cgroup. Names are listed in the README.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Pool, PoolEvent } from './pool/pool.js';
import type { StartKind } from './pool/policy.js';
import { throttledCounter } from '../common/concurrency.js';

export interface InvocationSample {
  fn: string;
  runtime: string;
  startKind: StartKind;
  ok: boolean;
  errorCode?: string;
  initMs: number;
  execMs: number;
  cpuMs: number;
  memoryPeakBytes: number;
  ioReadBytes?: number;
  ioWriteBytes?: number;
  /** Bytes through a bridge container's eth0 during the invocation (received, sent). */
  netRxBytes?: number;
  netTxBytes?: number;
}

export class WorkerMetrics {
  private readonly startLatency: Histogram<'kind' | 'runtime'>;
  private readonly execLatency: Histogram<'function' | 'outcome'>;
  private readonly invocations: Counter<'function' | 'kind' | 'outcome'>;
  private readonly cpuSeconds: Counter<'function'>;
  private readonly memoryPeak: Gauge<'function'>;
  private readonly ioBytes: Counter<'function' | 'direction'>;
  private readonly netBytes: Counter<'function' | 'direction'>;
  private readonly specializations: Counter<'runtime'>;
  private readonly evictions: Counter<'reason'>;
  private readonly created: Counter<'runtime'>;
  private readonly bootSeconds: Histogram<'runtime'>;
  readonly throttled: Counter<'function' | 'mode'>;

  constructor(registry: Registry, pool: () => Pool | undefined) {
    const registers = [registry];
    this.throttled = throttledCounter(registry);
    this.startLatency = new Histogram({
      name: 'faasbox_cold_start_seconds',
      help: 'Time to make a container ready for an invocation, by start kind (warm, specialized, cold) and runtime',
      labelNames: ['kind', 'runtime'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.execLatency = new Histogram({
      name: 'faasbox_invocation_exec_seconds',
      help: 'Time the function itself ran, by function and outcome',
      labelNames: ['function', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.invocations = new Counter({ name: 'faasbox_worker_invocations_total', help: 'Invocations run by this worker', labelNames: ['function', 'kind', 'outcome'], registers });
    this.cpuSeconds = new Counter({ name: 'faasbox_function_cpu_seconds_total', help: 'CPU time used by invocations of a function, from its containers\' cgroups', labelNames: ['function'], registers });
    this.memoryPeak = new Gauge({ name: 'faasbox_function_memory_peak_bytes', help: 'Peak memory of the latest invocation of a function, from its container\'s cgroup', labelNames: ['function'], registers });
    this.ioBytes = new Counter({
      name: 'faasbox_function_io_bytes_total',
      help: 'Block I/O of invocations of a function (read, write), from its containers\' cgroups (io.stat; on cgroup v1 only where the function has io limits)',
      labelNames: ['function', 'direction'],
      registers,
    });
    this.netBytes = new Counter({
      name: 'faasbox_function_network_bytes_total',
      help: "Network traffic of invocations of a bridge function (rx: received, tx: sent), from its veth's counters",
      labelNames: ['function', 'direction'],
      registers,
    });
    this.specializations = new Counter({ name: 'faasbox_pool_specializations_total', help: 'Stem cells specialised for a function', labelNames: ['runtime'], registers });
    this.evictions = new Counter({ name: 'faasbox_pool_evictions_total', help: 'Pooled containers removed, by reason', labelNames: ['reason'], registers });
    this.created = new Counter({ name: 'faasbox_pool_containers_created_total', help: 'Containers booted by the pool', labelNames: ['runtime'], registers });
    this.bootSeconds = new Histogram({
      name: 'faasbox_pool_boot_seconds',
      help: 'Time to create a container and boot its runtime to ready',
      labelNames: ['runtime'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    new Gauge({
      name: 'faasbox_pool_containers',
      help: 'Pooled containers by kind (stem, function) and state (starting, idle, busy, removing)',
      labelNames: ['kind', 'state', 'runtime'],
      registers,
      collect() {
        this.reset();
        for (const s of pool()?.slots() ?? []) this.inc({ kind: s.kind, state: s.state, runtime: s.runtime });
      },
    });
    new Gauge({
      name: 'faasbox_pool_memory_committed_bytes',
      help: 'Sum of the memory limits of every pooled container',
      registers,
      collect() {
        this.set((pool()?.usedMb() ?? 0) * 1024 * 1024);
      },
    });
  }

  onPoolEvent = (e: PoolEvent): void => {
    if (e.type === 'specialized') this.specializations.inc({ runtime: e.runtime });
    else if (e.type === 'evicted') this.evictions.inc({ reason: e.reason });
    else if (e.type === 'created') {
      this.created.inc({ runtime: e.runtime });
      this.bootSeconds.observe({ runtime: e.runtime }, e.ms / 1000);
    }
  };

  observe(s: InvocationSample): void {
    const outcome = s.ok ? 'ok' : (s.errorCode ?? 'error');
    this.startLatency.observe({ kind: s.startKind, runtime: s.runtime }, s.initMs / 1000);
    this.execLatency.observe({ function: s.fn, outcome }, s.execMs / 1000);
    this.invocations.inc({ function: s.fn, kind: s.startKind, outcome });
    if (s.cpuMs > 0) this.cpuSeconds.inc({ function: s.fn }, s.cpuMs / 1000);
    if (s.memoryPeakBytes > 0) this.memoryPeak.set({ function: s.fn }, s.memoryPeakBytes);
    if (s.ioReadBytes) this.ioBytes.inc({ function: s.fn, direction: 'read' }, s.ioReadBytes);
    if (s.ioWriteBytes) this.ioBytes.inc({ function: s.fn, direction: 'write' }, s.ioWriteBytes);
    if (s.netRxBytes) this.netBytes.inc({ function: s.fn, direction: 'rx' }, s.netRxBytes);
    if (s.netTxBytes) this.netBytes.inc({ function: s.fn, direction: 'tx' }, s.netTxBytes);
  }
}
