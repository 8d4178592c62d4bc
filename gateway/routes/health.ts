/**
 * Liveness and readiness, unauthenticated as probes expect; Prometheus metrics, which
 * need a token unless made public (metrics-auth.ts).
 */
import { Hono } from 'hono';
import { UnavailableError } from '../../common/errors.js';
import { scrape } from '../../common/metrics.js';
import type { GatewayDeps } from '../deps.js';
import { MetricsGuard } from '../metrics-auth.js';

const READY_TIMEOUT_MS = 1000;

export function healthApp(deps: GatewayDeps): Hono {
  const app = new Hono();
  const guard = new MetricsGuard([deps.config.metricsToken, deps.config.apiKey], deps.config.metricsPublic);

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    if (deps.drain?.draining) throw new UnavailableError(`draining: the gateway is shutting down (${deps.drain.openRequests - 1} requests still open)`);
    let timer: NodeJS.Timeout | undefined;
    try {
      // ioredis queues commands while disconnected; a probe must answer, not wait.
      await Promise.race([
        deps.redis.ping(),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no PONG within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS))),
      ]);
    } catch (err) {
      throw new UnavailableError(`redis is not reachable: ${err instanceof Error ? err.message : String(err)}`, err);
    } finally {
      clearTimeout(timer);
    }
    return c.json({ status: 'ready' });
  });

  app.get('/metrics', async (c) => {
    guard.check(c.req.header('authorization'));
    return c.body(await scrape(deps.metrics), 200, { 'Content-Type': deps.metrics.contentType });
  });

  return app;
}
