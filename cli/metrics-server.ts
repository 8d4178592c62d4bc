/**
 * A standalone worker's HTTP server: it has no API, only its metrics for Prometheus,
 * behind the same guard as the gateway's /metrics (gateway/metrics-auth.ts), and its
 * probes for Kubernetes, /healthz and /readyz, which are not behind it (a kubelet sends
 * no token, and they tell nothing a token should guard).
 */
import { createServer, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { FaasboxError, RouteNotFoundError } from '../common/errors.js';
import { scrape } from '../common/metrics.js';
import { HTTP_STATUS, errorBody } from '../gateway/errors.js';
import type { MetricsGuard } from '../gateway/metrics-auth.js';
import type { WorkerHealth } from '../worker/health.js';

export async function serveMetrics(registry: Registry, guard: MetricsGuard, port: number, host: string, health?: WorkerHealth): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const fail = (e: FaasboxError) => res.writeHead(HTTP_STATUS[e.code], { 'content-type': 'application/json' }).end(JSON.stringify(errorBody(e)));
    const path = (req.url ?? '/').split('?')[0];
    if (health && path === '/healthz') {
      void health.health().then((h) => json(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'unhealthy', redis: h.redis }));
      return;
    }
    if (health && path === '/readyz') {
      const r = health.readiness();
      return json(res, r.ready ? 200 : 503, r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason });
    }
    if (req.url !== '/metrics') return fail(new RouteNotFoundError(req.method ?? 'GET', req.url ?? '/'));
    try {
      guard.check(req.headers.authorization);
    } catch (err) {
      if (err instanceof FaasboxError) return fail(err);
      throw err;
    }
    void scrape(registry).then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { server, port: (server.address() as AddressInfo).port };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  // A probe's answer is about now: no cache may keep it.
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
