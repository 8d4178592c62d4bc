/**
 * A registry's authentication, as the distribution spec and Docker do it:
 *
 *   request --> 401 + WWW-Authenticate: Basic realm=...          --> again with Basic user:pass
 *           --> 401 + WWW-Authenticate: Bearer realm=,service=,scope=
 *                   --> GET realm?service=..&scope=.. (Basic user:pass when there are creds)
 *                   --> {token|access_token, expires_in} --> again with Bearer <token>
 *
 * A token is kept until `expires_in` (60 s when the server gives none) and fetched again,
 * before a request, once it has expired. A 401 on a request made with a token fetched for
 * it (or with Basic creds) is final: RegistryUnauthorizedError.
 *
 * Secrets (passwords, tokens, the Authorization header) live in this module's objects only:
 * no message, log line, record or progress event built here or by its callers carries one.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { RegistryUnauthorizedError } from '../../../../common/errors.js';
import type { RegistryCredentials } from '../pull-types.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * The challenges of a WWW-Authenticate header (RFC 7235): `Scheme k=v, k="quoted, \"v\"", ...`,
 * several challenges possibly in one header. Scheme and parameter names are case-insensitive
 * (returned lower case); values keep their case.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const text = Array.isArray(header) ? header.join(', ') : (header ?? '');
  const out: Challenge[] = [];
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === ',')) i++;
  };
  const token = () => {
    const m = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(text.slice(i));
    if (!m) return '';
    i += m[0].length;
    return m[0];
  };
  while (i < text.length) {
    ws();
    const scheme = token();
    if (!scheme) {
      i++;
      continue;
    }
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    for (;;) {
      const save = i;
      ws();
      const name = token();
      while (text[i] === ' ') i++;
      if (!name || text[i] !== '=') {
        // Not a parameter: the next challenge's scheme (or junk) starts here.
        i = save;
        break;
      }
      i++;
      while (text[i] === ' ') i++;
      let value = '';
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          value += text[i++];
        }
        i++;
      } else {
        value = token();
      }
      ch.params[name.toLowerCase()] = value;
      while (text[i] === ' ') i++;
      if (text[i] !== ',') break;
    }
  }
  return out;
}

/** "user:pass" (the form --creds takes and config.json's `auth` decodes to). */
export function parseCreds(text: string): RegistryCredentials | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1).replace(/\r?\n$/, '') };
}

/** The directory of the Docker config: the setting, else $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(setting?: string, env: NodeJS.ProcessEnv = process.env): string {
  return setting ?? env.DOCKER_CONFIG ?? path.join(homedir(), '.docker');
}

/** The key of `auths` reduced to host[:port] ("https://index.docker.io/v1/" -> "index.docker.io"). */
function authsHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

/**
 * Credentials for registry from a Docker config.json's `auths` (`auth`: base64 of
 * user:pass, or `username`/`password`). Credential helpers (credsStore, credHelpers) are
 * not run. A missing file means none; a malformed one is an error naming the file only.
 */
export function credsFromDockerConfig(dir: string, registry: string): RegistryCredentials | undefined {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    config = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON`);
  }
  const wanted = registry.toLowerCase();
  const hub = wanted === 'docker.io' || wanted === 'index.docker.io' || wanted === 'registry-1.docker.io';
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    const host = authsHost(key);
    if (host !== wanted && !(hub && (host === 'index.docker.io' || host === 'docker.io' || host === 'registry-1.docker.io'))) continue;
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const creds = parseCreds(Buffer.from(entry.auth, 'base64').toString('utf8'));
      if (creds) return creds;
    }
  }
  return undefined;
}

/** What fetches a token: GET url with these headers, the JSON body back (or a status). */
export type TokenFetcher = (url: URL, headers: Record<string, string>) => Promise<{ status: number; body: unknown }>;

interface Token {
  value: string;
  expiresAt: number;
}

export class Authenticator {
  private basic = false;
  private bearer: Challenge | undefined;
  private token: Token | undefined;
  /** The token being fetched: requests that find it expired at once share one fetch. */
  private pending: Promise<Token> | undefined;

  constructor(
    private readonly registry: string,
    private readonly repository: string,
    private readonly creds: RegistryCredentials | undefined,
    private readonly fetchToken: TokenFetcher,
    private readonly now: () => number = Date.now,
  ) {}

  private basicHeader(): string {
    return `Basic ${Buffer.from(`${this.creds!.username}:${this.creds!.password}`).toString('base64')}`;
  }

  /** The Authorization header for the next request to the registry (a token refreshed if it expired). */
  async header(): Promise<string | undefined> {
    if (this.bearer) {
      if (!this.token || this.now() >= this.token.expiresAt) {
        if (!this.pending) {
          this.pending = this.requestToken(this.bearer).finally(() => (this.pending = undefined));
        }
        this.token = await this.pending;
      }
      return `Bearer ${this.token.value}`;
    }
    if (this.basic && this.creds) return this.basicHeader();
    return undefined;
  }

  /**
   * A 401 came back for a request sent with `sent` (the header used, if any). Returns when
   * another attempt may succeed (the challenge set up); throws when it cannot.
   */
  async unauthorized(wwwAuthenticate: string | string[] | undefined, sent: string | undefined): Promise<void> {
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      if (!bearer.params.realm) throw new RegistryUnauthorizedError(this.registry, 'its Bearer challenge names no realm');
      const sameScope = this.bearer !== undefined && this.bearer.params.scope === bearer.params.scope;
      const current = this.token !== undefined && sent === `Bearer ${this.token.value}`;
      // A token that was fresh for this very request, asked for this very scope, was refused:
      // more tokens will not help.
      if (current && sameScope && this.token!.expiresAt > this.now()) {
        const err = bearer.params.error ? ` (${bearer.params.error})` : '';
        throw new RegistryUnauthorizedError(this.registry, `the token for ${this.repository} was refused${err}${this.creds ? '' : '; no credentials were given'}`);
      }
      if (current || !sameScope) this.token = undefined;
      this.bearer = bearer;
      return;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (!this.creds) throw new RegistryUnauthorizedError(this.registry, 'it asks for credentials and none were given (--creds, or a Docker config.json)');
      if (sent?.startsWith('Basic ')) throw new RegistryUnauthorizedError(this.registry, `the credentials of user ${JSON.stringify(this.creds.username)} were refused`);
      this.basic = true;
      return;
    }
    throw new RegistryUnauthorizedError(this.registry, `it answered 401 with no challenge faasbox speaks (${challenges.map((c) => c.scheme).join(', ') || 'none'})`);
  }

  private async requestToken(ch: Challenge): Promise<Token> {
    let url: URL;
    try {
      url = new URL(ch.params.realm!);
    } catch {
      throw new RegistryUnauthorizedError(this.registry, 'its token realm is not a URL');
    }
    if (ch.params.service) url.searchParams.set('service', ch.params.service);
    url.searchParams.set('scope', ch.params.scope ?? `repository:${this.repository}:pull`);
    const headers: Record<string, string> = {};
    if (this.creds) {
      headers.authorization = this.basicHeader();
      url.searchParams.set('account', this.creds.username);
    }
    const asked = this.now();
    const { status, body } = await this.fetchToken(url, headers);
    if (status === 401 || status === 403) {
      throw new RegistryUnauthorizedError(this.registry, this.creds ? `its token server (${url.host}) refused the credentials of user ${JSON.stringify(this.creds.username)}` : `its token server (${url.host}) wants credentials and none were given`);
    }
    if (status !== 200) throw new RegistryUnauthorizedError(this.registry, `its token server (${url.host}) answered ${status}`);
    const b = (body ?? {}) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const value = typeof b.token === 'string' && b.token ? b.token : typeof b.access_token === 'string' ? b.access_token : '';
    if (!value) throw new RegistryUnauthorizedError(this.registry, `its token server (${url.host}) answered without a token`);
    const seconds = typeof b.expires_in === 'number' && b.expires_in > 0 ? b.expires_in : 60;
    // Counted from when it was asked for, less a margin: a token is not sent in its last moments.
    return { value, expiresAt: asked + seconds * 1000 - Math.min(5000, seconds * 100) };
  }
}
