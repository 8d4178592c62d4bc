/**
 * Bounds on how long a client may take to send its request: its headers within
 * headersTimeoutMs, the whole request (body included) within requestTimeoutMs. Node's
 * HTTP server enforces both (the body is read from its IncomingMessage, so the same
 * clock covers it); this module sets them and answers the timeout with faasbox's JSON
 * error body instead of Node's bare 408. Answering is not bounded here: a sync
 * invocation may run for minutes after its body has arrived.
 */
import type { Server, ServerOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { RequestTimeoutError } from '../common/errors.js';
import type { GatewayConfig } from './config.js';
import { HTTP_STATUS, errorBody } from './errors.js';

export function requestTimeoutOptions(config: Pick<GatewayConfig, 'headersTimeoutMs' | 'requestTimeoutMs'>): ServerOptions {
  return {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    // Node checks for expired requests every 30 s by default, which is what let a request
    // whose body never came hold its socket for 318 s (a 300 s timeout found up to 30 s
    // late); a tenth of the shorter timeout keeps the lateness small against the timeout.
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(Math.min(config.headersTimeoutMs, config.requestTimeoutMs) / 10))),
  };
}

function rawResponse(status: number, reason: string, body?: string): string {
  const head = [`HTTP/1.1 ${status} ${reason}`, 'Connection: close'];
  if (body === undefined) return `${head.join('\r\n')}\r\n\r\n`;
  head.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * Takes over the server's client errors: a timeout gets 408 REQUEST_TIMEOUT as JSON, and
 * the others what Node itself answers (431 for oversized headers, else 400); then the
 * socket closes.
 */
export function answerClientErrors(server: Server, config: Pick<GatewayConfig, 'headersTimeoutMs' | 'requestTimeoutMs'>): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Node's own condition for answering: a response may not have begun on this socket
    // (its in-flight ServerResponse has sent no header), else the peer would get garbage.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    let answer = '';
    if (err.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        const { headersTimeoutMs, requestTimeoutMs } = config;
        const e = new RequestTimeoutError(`the request did not arrive in time: headers are allowed ${headersTimeoutMs} ms, the whole request (body included) ${requestTimeoutMs} ms`, { headersTimeoutMs, requestTimeoutMs });
        answer = rawResponse(HTTP_STATUS[e.code], 'Request Timeout', JSON.stringify(errorBody(e)));
      } else if (err.code === 'HPE_HEADER_OVERFLOW') answer = rawResponse(431, 'Request Header Fields Too Large');
      else answer = rawResponse(400, 'Bad Request');
    }
    // Closed once the answer is flushed; a client that does not read it gets a second.
    if (answer) {
      socket.end(answer, () => socket.destroy());
      setTimeout(() => socket.destroy(), 1000).unref();
    } else socket.destroy();
  });
}
