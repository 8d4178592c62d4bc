/**
 * A standalone worker's HTTP server: it has no API, only its metrics for Prometheus,
 * behind the same guard as the gateway's /metrics (gateway/metrics-auth.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { FaasboxError, RouteNotFoundError } from '../common/errors.js';
import { scrape } from '../common/metrics.js';
import { HTTP_STATUS, errorBody } from '../gateway/errors.js';
import type { MetricsGuard } from '../gateway/metrics-auth.js';

export async function serveMetrics(registry: Registry, guard: MetricsGuard, port: number, host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const fail = (e: FaasboxError) => res.writeHead(HTTP_STATUS[e.code], { 'content-type': 'application/json' }).end(JSON.stringify(errorBody(e)));
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
