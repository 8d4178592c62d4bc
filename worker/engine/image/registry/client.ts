/**
 * The distribution API (v2) for one repository: manifests and blobs, with the auth flow
 * (auth.ts), redirects, retries and resumable blob transfers.
 *
 * Retries: a connection that fails (reset, refused, timed out) and a 5xx or 429 answer are
 * tried again after 250 ms, 500 ms, 1 s, ... (at most `retries` times, 4 s apart at most);
 * after that the pull fails with RegistryUnavailableError. A blob cut off halfway is asked
 * for again from where it stopped (`Range: bytes=N-`); a server answering 200 to that sends
 * the whole blob, which is then written from its start.
 *
 * Redirects (307 to blob storage, say) are followed, at most 5, and the registry's
 * Authorization header goes to the registry's own origin only, never to the host redirected to.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DigestMismatchError, ImageInvalidError, ImageNotFoundError, RegistryUnauthorizedError, RegistryUnavailableError } from '../../../../common/errors.js';
import type { RegistryCredentials } from '../pull-types.js';
import { Authenticator } from './auth.js';
import { ACCEPT, MAX_MANIFEST_BYTES, type Descriptor } from './manifest.js';
import { apiHost, type ImageReference } from './reference.js';
import { discard, isTransient, readBounded, type Response, type Transport } from './transport.js';

export const DEFAULT_RETRIES = 4;
const MAX_REDIRECTS = 5;
/** Rounds of 401 -> new credentials for one request before giving up (Basic, a token, a token of another scope). */
const MAX_AUTH_ROUNDS = 3;

export interface ClientOptions {
  retries?: number;
  signal?: AbortSignal | undefined;
}

export interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  contentType: string | undefined;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The code and message of a registry's error body ({errors:[{code,message}]}), for messages. */
async function errorOf(res: Response): Promise<string> {
  try {
    const body = JSON.parse((await readBounded(res.body, 64 * 1024, 'an error body')).toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const e = body.errors?.[0];
    return e ? ` ${e.code ?? ''}${e.message ? `: ${String(e.message).slice(0, 200)}` : ''}` : '';
  } catch {
    return '';
  }
}

function notFound(what: string, message: string): ImageNotFoundError {
  const err = new ImageNotFoundError(what);
  err.message = message;
  return err;
}

export class RegistryClient {
  private base: URL | undefined;
  private readonly auth: Authenticator;
  private readonly retries: number;
  private readonly signal: AbortSignal | undefined;

  constructor(
    readonly ref: ImageReference,
    private readonly transport: Transport,
    creds: RegistryCredentials | undefined,
    opts: ClientOptions = {},
  ) {
    this.retries = opts.retries ?? DEFAULT_RETRIES;
    this.signal = opts.signal;
    this.auth = new Authenticator(ref.registry, ref.repository, creds, (url, headers) => this.tokenRequest(url, headers));
  }

  private async tokenRequest(url: URL, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
    const res = await this.withRetries(`the token server ${url.host}`, () => this.transport.request(url, { headers, signal: this.signal }));
    if (res.status !== 200) {
      discard(res);
      return { status: res.status, body: undefined };
    }
    const bytes = await readBounded(res.body, 1024 * 1024, 'the token answer');
    try {
      return { status: 200, body: JSON.parse(bytes.toString('utf8')) };
    } catch {
      return { status: 200, body: undefined };
    }
  }

  private async backoff(attempt: number): Promise<void> {
    await sleep(Math.min(4000, 250 * 2 ** attempt) * (0.75 + Math.random() / 2), undefined, this.signal ? { signal: this.signal } : undefined);
  }

  /** fn until it answers other than 5xx/429 or fails other than transiently, at most 1 + retries times. */
  private async withRetries(what: string, fn: () => Promise<Response>): Promise<Response> {
    let last = '';
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fn();
        if (res.status < 500 && res.status !== 429) return res;
        last = `it answered ${res.status}${await errorOf(res)}`;
      } catch (err) {
        if (!isTransient(err)) throw this.unavailable(what, err);
        last = (err as Error).message;
      }
      if (attempt >= this.retries) throw new RegistryUnavailableError(this.ref.registry, `${what}: ${last} (${attempt + 1} attempts)`);
      await this.backoff(attempt);
    }
  }

  private unavailable(what: string, err: unknown): Error {
    if (err instanceof RegistryUnauthorizedError || err instanceof RegistryUnavailableError) return err;
    if ((err as Error).name === 'AbortError') return err as Error;
    const e = err as NodeJS.ErrnoException;
    return new RegistryUnavailableError(this.ref.registry, `${what}: ${e.code ? `${e.code} ` : ''}${e.message}`);
  }

  async baseUrl(): Promise<URL> {
    const host = apiHost(this.ref.registry);
    for (let attempt = 0; !this.base; attempt++) {
      try {
        this.base = await this.transport.baseUrl(host, this.signal);
      } catch (err) {
        // A registry restarting refuses connections for a moment: retried like any request.
        if (!isTransient(err) || attempt >= this.retries) throw this.unavailable(host, err);
        await this.backoff(attempt);
      }
    }
    return this.base;
  }

  /**
   * GET path (under /v2/<repo>/) with the auth flow, redirects and retries. Returns the
   * final response whatever its status (the caller reads 2xx, judges 404).
   */
  async get(pathUnderRepo: string, headers: Record<string, string>, what: string): Promise<Response> {
    const base = await this.baseUrl();
    let url = new URL(`v2/${this.ref.repository}/${pathUnderRepo}`, base);
    let authRounds = 0;
    for (let redirects = 0; ; ) {
      const own = url.origin === base.origin;
      let sent: string | undefined;
      const res = await this.withRetries(what, async () => {
        sent = own ? await this.auth.header() : undefined;
        return this.transport.request(url, { headers: { ...headers, ...(sent ? { authorization: sent } : {}) }, signal: this.signal });
      });
      if (res.status === 401 && own) {
        discard(res);
        if (++authRounds > MAX_AUTH_ROUNDS) throw new RegistryUnauthorizedError(this.ref.registry, `${what}: still 401 after ${MAX_AUTH_ROUNDS} rounds of authentication`);
        await this.auth.unauthorized(res.headers['www-authenticate'], sent);
        continue;
      }
      if (res.status === 403) {
        throw new RegistryUnauthorizedError(this.ref.registry, `${what}: access denied (403)${await errorOf(res)}`);
      }
      if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
        discard(res);
        if (++redirects > MAX_REDIRECTS) throw new RegistryUnavailableError(this.ref.registry, `${what}: more than ${MAX_REDIRECTS} redirects`);
        url = new URL(res.headers.location, url);
        try {
          this.transport.checkScheme(url);
        } catch (err) {
          throw this.unavailable(`${what}: its redirect`, err);
        }
        continue;
      }
      return res;
    }
  }

  /** The manifest named by target (a tag or a digest), its bytes hashed as they are, verified. */
  async manifest(target: string, attempt = 0): Promise<FetchedManifest> {
    const what = `${this.ref.registry}/${this.ref.repository}:${target}`;
    const res = await this.get(`manifests/${target}`, { accept: ACCEPT }, `the manifest ${what}`);
    if (res.status === 404) throw notFound(what, `image ${what} was not found in the registry (404${await errorOf(res)})`);
    if (res.status !== 200) throw new RegistryUnavailableError(this.ref.registry, `the manifest ${what}: it answered ${res.status}${await errorOf(res)}`);
    let bytes: Buffer;
    try {
      bytes = await readBounded(res.body, MAX_MANIFEST_BYTES, `the manifest ${what}`);
    } catch (err) {
      if (isTransient(err)) {
        if (attempt >= this.retries) throw this.unavailable(`the manifest ${what}`, err);
        await this.backoff(attempt);
        return this.manifest(target, attempt + 1);
      }
      throw new ImageInvalidError((err as Error).message);
    }
    // Hash the bytes that are parsed: the digest names exactly what faasbox trusts.
    const digest = sha256(bytes);
    const expected = target.startsWith('sha256:') ? target : headerDigest(res);
    if (expected !== undefined && expected !== digest) throw new DigestMismatchError(`the manifest ${what}`, expected, digest);
    const ct = res.headers['content-type'];
    return { bytes, digest, contentType: typeof ct === 'string' ? ct : undefined };
  }

  /**
   * The blob written to `part` (appended to what a killed pull left there: hashed again
   * first, then resumed with Range), its sha256 computed on the way. Resolves when the file
   * holds exactly the blob; DigestMismatchError (and the file removed by the caller) when not.
   * onBytes hears of every chunk written. Returns the bytes that came over the network.
   */
  async blobToFile(desc: Descriptor, part: string, onBytes: (n: number) => void): Promise<{ transferred: number; resumedFrom: number }> {
    const what = `blob ${desc.digest}`;
    const fh = await open(part, 'a+');
    try {
      let hash: Hash = createHash('sha256');
      let offset = 0;
      const have = (await stat(part)).size;
      if (have > desc.size) {
        await fh.truncate(0);
      } else if (have > 0) {
        for await (const c of fh.createReadStream({ start: 0, autoClose: false }) as AsyncIterable<Buffer>) hash.update(c);
        offset = have;
        onBytes(have);
      }
      const resumedFrom = offset;
      let transferred = 0;
      let cuts = 0;
      const restart = async () => {
        await fh.truncate(0);
        onBytes(-offset);
        offset = 0;
        hash = createHash('sha256');
      };
      while (offset < desc.size || desc.size === 0) {
        const res = await this.get(`blobs/${desc.digest}`, offset > 0 ? { range: `bytes=${offset}-` } : {}, what);
        if (res.status === 404) throw notFound(`${this.ref.registry}/${this.ref.repository}`, `${what} of ${this.ref.registry}/${this.ref.repository} is not in the registry (404)`);
        if (res.status === 206) {
          const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
          if (!m || Number(m[1]) !== offset) {
            // A range other than the one asked for: start again, whole.
            discard(res);
            await restart();
            continue;
          }
        } else if (res.status === 200) {
          if (offset > 0) await restart();
        } else if (res.status === 416 && offset === desc.size) {
          discard(res);
          break;
        } else {
          throw new RegistryUnavailableError(this.ref.registry, `${what}: it answered ${res.status}${await errorOf(res)}`);
        }
        try {
          for await (const c of res.body as AsyncIterable<Buffer>) {
            if (offset + c.length > desc.size) {
              res.body.destroy();
              const err = new DigestMismatchError(what, desc.digest, 'unknown');
              err.message = `${what}: the registry sent more than the ${desc.size} bytes its descriptor gives; nothing of it was kept`;
              throw err;
            }
            await fh.write(c, 0, c.length, null);
            hash.update(c);
            offset += c.length;
            transferred += c.length;
            onBytes(c.length);
          }
        } catch (err) {
          if (!isTransient(err)) throw err instanceof DigestMismatchError ? err : this.unavailable(what, err);
        }
        if (desc.size === 0) break;
        if (offset < desc.size) {
          // Cut off (a reset, or a body that ended short): ask for the rest.
          if (++cuts > this.retries) throw new RegistryUnavailableError(this.ref.registry, `${what}: the transfer was cut off ${cuts} times (at ${offset} of ${desc.size} bytes)`);
          await this.backoff(cuts - 1);
        }
      }
      const digest = `sha256:${hash.digest('hex')}`;
      if (digest !== desc.digest) {
        const err = new DigestMismatchError(what, desc.digest, digest);
        (err as { resumedFrom?: number }).resumedFrom = resumedFrom;
        throw err;
      }
      return { transferred, resumedFrom };
    } finally {
      await fh.close();
    }
  }
}

function headerDigest(res: Response): string | undefined {
  const h = res.headers['docker-content-digest'];
  const v = Array.isArray(h) ? h[0] : h;
  // Only a sha256 digest can be checked here; another algorithm is left to the bytes' own hash.
  return typeof v === 'string' && /^sha256:[0-9a-f]{64}$/.test(v.trim()) ? v.trim() : undefined;
}
