/**
 * A token server for a registry in token-auth mode, on 127.0.0.1: it checks Basic
 * credentials (when it is given a user) and answers {token, access_token, expires_in} with
 * an ES256 JWT whose header carries the x5c chain of a self-signed certificate (openssl
 * req), the certificate the registry trusts as its `auth.token.rootcertbundle`.
 * It counts what it is asked, so tests can see a token refreshed.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TokenServerOptions {
  user?: { name: string; password: string };
  /** expires_in of every token (seconds). */
  expiresIn?: number;
  /** The actions granted (default pull and push); [] grants nothing. */
  actions?: string[];
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Every request: its scope and whether it carried an Authorization header. */
  requests: { scope: string | null; authorized: boolean }[];
  /** Tokens handed out. */
  issued: number;
  options: TokenServerOptions;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'faasbox-token-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=faasbox-test-token-issuer'], { stdio: 'ignore' });
  const key = createPrivateKey(readFileSync(keyFile));
  const der = new X509Certificate(readFileSync(certFile)).raw;
  const service = 'faasbox-test-registry';
  const issuer = 'faasbox-test-issuer';
  const state: TokenServer = { realm: '', service, issuer, certFile, requests: [], issued: 0, options, stop: async () => {} };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scope = url.searchParams.get('scope');
    const authz = req.headers.authorization;
    state.requests.push({ scope, authorized: authz !== undefined });
    const user = state.options.user;
    if (user) {
      const ok = authz === `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`;
      if (!ok) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
    }
    const now = Math.floor(Date.now() / 1000);
    const access = (scope ?? '')
      .split(' ')
      .filter(Boolean)
      .map((s) => {
        const [type, name] = s.split(':');
        return { type, name, actions: state.options.actions ?? ['pull', 'push'] };
      });
    const header = { alg: 'ES256', typ: 'JWT', x5c: [der.toString('base64')] };
    // The JWT itself lives 5 minutes; expires_in (what the client goes by) may be shorter.
    const claims = { iss: issuer, sub: user?.name ?? '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    const token = `${input}.${b64url(sig)}`;
    state.issued++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: state.options.expiresIn ?? 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  state.realm = `http://127.0.0.1:${port}/token`;
  state.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  };
  return state;
}
