/**
 * Gateway metrics, registered on the prom-client Registry passed in the deps (so a process
 * that hosts several components exports one /metrics). Registering twice on the same
 * registry reuses the existing collectors, so several apps may share one registry.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { throttledCounter } from '../common/concurrency.js';
import { registered } from '../common/metrics.js';

export interface GatewayMetrics {
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  invocationDuration: Histogram<'function' | 'mode' | 'outcome' | 'start_kind'>;
  throttled: Counter<'function' | 'mode'>;
}

const LATENCY_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

export function gatewayMetrics(registry: Registry): GatewayMetrics {
  return {
    httpRequests: registered(registry, 'faasbox_gateway_http_requests_total', () =>
      new Counter({
        name: 'faasbox_gateway_http_requests_total',
        help: 'HTTP requests answered by the gateway, by route pattern and status',
        labelNames: ['method', 'route', 'status'] as const,
        registers: [registry],
      }),
    ),
    httpDuration: registered(registry, 'faasbox_gateway_http_request_duration_seconds', () =>
      new Histogram({
        name: 'faasbox_gateway_http_request_duration_seconds',
        help: 'Time to answer an HTTP request, by route pattern',
        labelNames: ['method', 'route'] as const,
        buckets: LATENCY_BUCKETS,
        registers: [registry],
      }),
    ),
    invocationDuration: registered(registry, 'faasbox_invocation_duration_seconds', () =>
      new Histogram({
        name: 'faasbox_invocation_duration_seconds',
        help: 'Synchronous invocation latency seen by the gateway (enqueue to reply), by outcome (ok or error code) and start kind',
        labelNames: ['function', 'mode', 'outcome', 'start_kind'] as const,
        buckets: LATENCY_BUCKETS,
        registers: [registry],
      }),
    ),
    throttled: throttledCounter(registry),
  };
}
