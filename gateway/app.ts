/**
 * The gateway's Hono app: one sub-app per resource, one error handler. Built from its deps
 * so that tests can call app.request() without a server.
 */
import { Hono } from 'hono';
import { routePath } from 'hono/route';
import { RouteNotFoundError } from '../common/errors.js';
import { KeyChecker } from './auth.js';
import type { GatewayDeps } from './deps.js';
import { asFaasboxError, errorResponse } from './errors.js';
import { gatewayMetrics } from './metrics.js';
import { deadLettersApp } from './routes/dead-letters.js';
import { functionsApp } from './routes/functions.js';
import { healthApp } from './routes/health.js';
import { imagesApp } from './routes/images.js';
import { invocationsApp } from './routes/invocations.js';
import { invokeApp } from './routes/invoke.js';
import { triggersApp } from './routes/triggers.js';

export function createApp(deps: GatewayDeps): Hono {
  const keys = new KeyChecker(deps.config.apiKey);
  const metrics = gatewayMetrics(deps.metrics);
  const app = new Hono();
  // Requests that matched no route: their only "route" is this middleware's own pattern.
  const unmatched = new WeakSet<object>();

  app.use(async (c, next) => {
    const end = metrics.httpDuration.startTimer();
    await next();
    // The route pattern, not the path: label values must not grow with function names or ids.
    const route = unmatched.has(c) ? 'unmatched' : routePath(c, -1);
    end({ method: c.req.method, route });
    metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
  });

  // During a drain only the probes and /metrics answer: nothing new is accepted (drain.ts).
  app.use(async (c, next) => {
    if (deps.drain?.draining) {
      c.header('Connection', 'close');
      c.header('Retry-After', '1');
      deps.drain.check(c.req.path);
    }
    await next();
  });

  app.route('/', healthApp(deps));
  app.route('/v1/functions', functionsApp(deps, keys));
  app.route('/v1/functions', invokeApp(deps, keys, metrics));
  app.route('/v1/functions', deadLettersApp(deps, keys));
  app.route('/v1/invocations', invocationsApp(deps, keys));
  app.route('/v1/triggers', triggersApp(deps, keys));
  app.route('/v1/images', imagesApp(deps, keys));

  app.notFound((c) => {
    unmatched.add(c);
    return errorResponse(c, new RouteNotFoundError(c.req.method, c.req.path));
  });
  app.onError((err, c) => errorResponse(c, asFaasboxError(err, c)));
  return app;
}
