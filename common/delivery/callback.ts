/**
 * Sending one HTTP callback under the host policy (host-policy.ts). The hostname is
 * resolved here, every address it resolves to is checked, and the connection goes to the
 * checked address itself (the request's `lookup` answers with it), so that DNS answering
 * differently between the check and the connect (rebinding) cannot reach a denied host.
 * Host header and TLS server name stay the URL's. Redirects are never followed: a 3xx is
 * a failed attempt, as a redirect could point anywhere.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { hostOf, type HostPolicy } from './host-policy.js';

/** The policy refuses the URL or every address it resolves to: not tried again. */
export class CallbackRefusedError extends Error {
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(`callback to ${redacted(url)} refused: ${reason}`);
    this.name = 'CallbackRefusedError';
  }
}

/** The receiver could not be reached or did not answer 2xx: tried again with backoff. */
export class CallbackFailedError extends Error {
  constructor(
    readonly url: string,
    reason: string,
    readonly status?: number,
  ) {
    super(`callback to ${redacted(url)} failed: ${reason}`);
    this.name = 'CallbackFailedError';
  }
}

/** The URL without its query (it may hold a token of the receiver's) for logs. */
export function redacted(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(not a URL)';
  }
}

export interface CallbackRequest {
  url: string;
  body: Buffer;
  headers: Record<string, string>;
  timeoutMs: number;
}

/** What the receiver's answer may hold that is read (and dropped): the rest is not waited for. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The first resolved address the policy permits; CallbackRefusedError when none is. */
export async function checkedAddress(policy: HostPolicy, url: URL, resolve = (host: string) => dnsLookup(host, { all: true, verbatim: true })): Promise<{ address: string; family: 4 | 6 }> {
  const host = hostOf(url);
  const literal = isIP(host);
  if (literal) {
    const v = policy.checkAddress(host);
    if (!v.ok) throw new CallbackRefusedError(url.href, v.reason);
    return { address: host, family: literal as 4 | 6 };
  }
  let answers: { address: string; family: number }[];
  try {
    answers = await resolve(host);
  } catch (err) {
    throw new CallbackFailedError(url.href, `resolving ${host}: ${(err as Error).message}`);
  }
  const trusted = policy.nameAllowed(host);
  const ok = answers.find((a) => trusted || policy.checkAddress(a.address).ok);
  if (!ok) throw new CallbackRefusedError(url.href, `${host} resolves to ${answers.map((a) => a.address).join(', ') || 'nothing'}, denied by the callback host policy`);
  return { address: ok.address, family: ok.family === 6 ? 6 : 4 };
}

/** POSTs the body; resolves with the receiver's status (2xx), else throws one of the errors above. */
export async function sendCallback(policy: HostPolicy, req: CallbackRequest): Promise<number> {
  const verdict = policy.checkUrl(req.url);
  if (!verdict.ok) throw new CallbackRefusedError(req.url, verdict.reason);
  const url = verdict.url!;
  const pinned = await checkedAddress(policy, url);
  // Node may ask for all addresses (autoSelectFamily) or one: either way, only the checked one.
  const lookup: LookupFunction = (_host, options, cb) => {
    if ((options as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [pinned]);
    else cb(null, pinned.address, pinned.family);
  };
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise<number>((resolve, reject) => {
    const r = mod.request(
      url,
      {
        method: 'POST',
        lookup,
        headers: { 'content-length': String(req.body.length), 'user-agent': 'faasbox-callback', ...req.headers },
        // No pooled socket: the next callback resolves and checks again.
        agent: false,
      },
      (res) => {
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) res.destroy();
        });
        const status = res.statusCode ?? 0;
        const done = () => (status >= 200 && status < 300 ? resolve(status) : reject(new CallbackFailedError(req.url, status >= 300 && status < 400 ? `answered ${status} (redirects are not followed)` : `answered ${status}`, status)));
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      },
    );
    r.setTimeout(req.timeoutMs, () => r.destroy(new Error(`no answer within ${req.timeoutMs} ms`)));
    r.on('error', (err) => reject(new CallbackFailedError(req.url, err.message)));
    r.end(req.body);
  });
}
