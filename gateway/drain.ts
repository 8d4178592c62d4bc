/**
 * The gateway's SIGTERM drain (main.ts, close): from its start, /readyz answers 503 (a
 * load balancer or Kubernetes takes the gateway out of rotation) and every new request
 * but the probes and /metrics is refused 503 UNAVAILABLE with `Connection: close`, so
 * nothing new is accepted (an async invoke refused here was never acknowledged). The
 * requests already open (a sync invocation may hold one for its whole run) are answered
 * as usual; the server closes once none is left, or when the grace period runs out.
 *
 * Requests are counted at the HTTP server, not in the app, so that one whose handler has
 * returned but whose answer is still being written counts too.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { UnavailableError } from '../common/errors.js';

/** Paths that keep answering while the gateway drains: what probes and scrapers ask. */
const DRAIN_EXEMPT = new Set(['/healthz', '/readyz', '/metrics']);

export class GatewayDrain {
  private open = 0;
  private started = false;
  private waiters: (() => void)[] = [];

  get draining(): boolean {
    return this.started;
  }

  /** Requests open now (the one asking included). */
  get openRequests(): number {
    return this.open;
  }

  /** Counts every request of the server from its headers to the end of its answer. */
  watch(server: Server): void {
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      this.open++;
      res.once('close', () => {
        this.open--;
        if (this.open === 0) for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  /** The drain starts: readiness fails and new requests are refused from here on. */
  begin(): void {
    this.started = true;
  }

  /** Throws UNAVAILABLE for a request that arrives during the drain (app.ts middleware). */
  check(path: string): void {
    if (this.started && !DRAIN_EXEMPT.has(path)) throw new UnavailableError('the gateway is shutting down: send the request to another gateway, or retry');
  }

  /** Resolves once no request is open (at once when none is). */
  idle(): Promise<void> {
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
