/** Liveness, readiness and Prometheus metrics; unauthenticated, as probes and scrapers expect. */
import { Hono } from 'hono';
import { UnavailableError } from '../../common/errors.js';
import { scrape } from '../../common/metrics.js';
import type { GatewayDeps } from '../deps.js';

const READY_TIMEOUT_MS = 1000;

export function healthApp(deps: GatewayDeps): Hono {
  const app = new Hono();

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
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
    return c.body(await scrape(deps.metrics), 200, { 'Content-Type': deps.metrics.contentType });
  });

  return app;
}
