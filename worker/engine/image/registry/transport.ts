/**
 * One HTTP(S) request to a registry (or its token server, or the blob storage it redirects
 * to) over node:http/https: no dependency for what the standard library does.
 *
 * Which scheme: HTTPS, verified against the system's CAs plus RegistrySettings.caFile. Plain
 * HTTP only for the registries named insecure and for loopback (127.0.0.0/8, localhost,
 * [::1]), as Docker does; for those HTTPS is tried first and plain HTTP used when the server
 * does not speak TLS (Docker's fallback), decided once per host.
 *
 * Every request has an idle timeout (no byte for `timeoutMs` ends it with ETIMEDOUT), so a
 * stalled transfer becomes an error the caller retries instead of a hang.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { RegistrySettings } from '../pull-types.js';

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  url: URL;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/** Errors worth another attempt: the connection, not the request, failed. */
const TRANSIENT = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);
export function isTransient(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  // The caller's own abort is not the network's failure: never retried.
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') return false;
  return TRANSIENT.has(e?.code ?? '') || /socket hang up|aborted|premature close/i.test(e?.message ?? '');
}

export function hostOf(hostPort: string): string {
  if (hostPort.startsWith('[')) return hostPort.slice(0, hostPort.indexOf(']') + 1);
  const i = hostPort.lastIndexOf(':');
  return i >= 0 ? hostPort.slice(0, i) : hostPort;
}

export function isLoopback(hostPort: string): boolean {
  const h = hostOf(hostPort).toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export class Transport {
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly insecure: Set<string>;
  /** host -> the scheme that worked (for hosts allowed plain). */
  private readonly schemes = new Map<string, 'https:' | 'http:'>();

  constructor(
    settings: RegistrySettings = {},
    readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    const ca = settings.caFile ? [...rootCertificates, readFileSync(settings.caFile, 'utf8')] : undefined;
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}) });
    this.insecure = new Set((settings.insecure ?? []).map((h) => h.toLowerCase()));
  }

  /** Whether host[:port] may be spoken to over plain HTTP. */
  plainAllowed(hostPort: string): boolean {
    const h = hostPort.toLowerCase();
    return isLoopback(h) || this.insecure.has(h) || this.insecure.has(hostOf(h));
  }

  /** The base URL of a registry's API: https, or http where allowed and TLS is not spoken. */
  async baseUrl(hostPort: string, signal?: AbortSignal): Promise<URL> {
    if (!this.plainAllowed(hostPort)) return new URL(`https://${hostPort}/`);
    let scheme = this.schemes.get(hostPort);
    if (!scheme) {
      scheme = 'https:';
      try {
        const res = await this.request(new URL(`https://${hostPort}/v2/`), { signal });
        res.body.resume();
      } catch (err) {
        // A plain-HTTP server answers a ClientHello with text: OpenSSL's "wrong version number".
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EPROTO' || /wrong version number|ssl|tls|ECONNRESET|socket hang up/i.test(`${e.code} ${e.message}`)) scheme = 'http:';
        else throw err;
      }
      this.schemes.set(hostPort, scheme);
    }
    return new URL(`${scheme}//${hostPort}/`);
  }

  /** A URL the registry (or a realm, a redirect) named: plain HTTP refused where TLS is required. */
  checkScheme(url: URL): void {
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && this.plainAllowed(url.host)) return;
    throw new Error(`refusing ${url.protocol}//${url.host}: plain HTTP only to loopback and to registries named insecure (--insecure-registry)`);
  }

  request(url: URL, opts: { method?: string; headers?: Record<string, string>; signal?: AbortSignal | undefined } = {}): Promise<Response> {
    this.checkScheme(url);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      const req = lib.request(url, {
        method: opts.method ?? 'GET',
        headers: { 'user-agent': 'faasbox-puller/1', ...opts.headers },
        agent: url.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      req.setTimeout(this.timeoutMs, () => {
        const err: NodeJS.ErrnoException = new Error(`no data from ${url.host} for ${this.timeoutMs} ms`);
        err.code = 'ETIMEDOUT';
        req.destroy(err);
      });
      req.once('error', reject);
      req.once('response', (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url }));
      req.end();
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Reads a small body whole, refusing more than max bytes (a manifest, a config, a token). */
export async function readBounded(body: IncomingMessage, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      body.destroy();
      throw new Error(`${what} is larger than ${max} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Throws away what is left of a body so the connection can be reused (or closes it). */
export function discard(res: Response): void {
  res.body.resume();
}
