/**
 * Image requests from the gateway to the workers, over Redis pub/sub: the gateway
 * publishes one request on {p}:image-requests naming the workers it asks (the live ones,
 * from their reports in {p}:workers), each of them answers on {p}:image-replies, and the
 * gateway waits for every answer or the timeout.
 *
 *   gateway                                   worker W (subscribed to image-requests)
 *     SUBSCRIBE image-replies (once)
 *     PUBLISH image-requests {id, op, workers:[W..], ref, platform, credsSealed}
 *                                              -> pull into its store / list its store
 *     <- image-replies {id, worker: W, ok, digest | images | error}
 *
 * Pub/sub keeps nothing: a request's credentials are never stored in Redis at all, and
 * travel sealed (common/secrets.ts, the deployment's key, the request id as associated
 * data), so that not even a MONITOR or a replica's stream shows them. A worker that is not
 * subscribed when the request goes out never answers; the gateway reports it as timed out.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ErrorCode, SecretKeyError, type ErrorInfo } from './errors.js';
import { workersKey } from './keys.js';
import type { SecretBox } from './secrets.js';

export const imageRequestsChannel = (prefix: string): string => `${prefix}:image-requests`;
export const imageRepliesChannel = (prefix: string): string => `${prefix}:image-replies`;

export type ImageOp = 'pull' | 'list';

export interface ImageRequest {
  id: string;
  op: ImageOp;
  /** Worker ids asked; the others ignore the request. */
  workers: string[];
  ref?: string;
  platform?: string;
  /** {"username","password"} sealed with the deployment's key, the request id as context. */
  credsSealed?: string;
}

/** One image as a worker's store lists it (a subset of the worker's ImageSummary). */
export interface WorkerImage {
  digest: string;
  tags: string[];
  size: number;
  platform?: string;
  pulledAt?: string;
}

export type ImageReply = { id: string; worker: string; ok: true; digest?: string; ref?: string; images?: WorkerImage[] } | { id: string; worker: string; ok: false; error: ErrorInfo };

/** A worker whose report is older than this is not asked (reports come every ~200 ms). */
export const LIVE_WORKER_MS = 5000;
export const DEFAULT_PULL_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_LIST_TIMEOUT_MS = 5000;

export function sealCreds(box: SecretBox | undefined, id: string, creds: { username: string; password: string }): string {
  if (!box) throw new SecretKeyError('registry credentials travel to the workers sealed with the deployment\'s secret key, and this gateway has none: set FAASBOX_SECRET_KEY (the same for every service)');
  return box.seal(JSON.stringify(creds), `image-request:${id}`);
}

export function openCreds(box: SecretBox | undefined, id: string, sealed: string): { username: string; password: string } {
  if (!box) throw new SecretKeyError('this worker has no secret key to open the request\'s registry credentials: set FAASBOX_SECRET_KEY (the same for every service)');
  return JSON.parse(box.open(sealed, `image-request:${id}`)) as { username: string; password: string };
}

export function parseImageRequest(raw: string): ImageRequest | undefined {
  try {
    const r = JSON.parse(raw) as ImageRequest;
    if (typeof r.id !== 'string' || (r.op !== 'pull' && r.op !== 'list') || !Array.isArray(r.workers)) return undefined;
    return r;
  } catch {
    return undefined;
  }
}

/** Ids of the workers whose last report is fresh, by Redis-independent local time. */
export async function liveWorkers(redis: Redis, prefix: string, now = Date.now()): Promise<string[]> {
  const all = await redis.hgetall(workersKey(prefix));
  const out: string[] = [];
  for (const [id, raw] of Object.entries(all)) {
    try {
      const at = (JSON.parse(raw) as { at?: unknown }).at;
      if (typeof at === 'number' && now - at <= LIVE_WORKER_MS) out.push(id);
    } catch {
      // a malformed report is no live worker
    }
  }
  return out.sort();
}

/** What each asked worker answered; a silent one is an UNAVAILABLE error. */
export type ImageAnswers = ImageReply[];

/** The gateway's side: one subscriber connection, shared by every request in flight. */
export class ImageRequestClient {
  private sub: Redis | undefined;
  private subscribing: Promise<void> | undefined;
  private readonly waiting = new Map<string, (r: ImageReply) => void>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly secrets?: SecretBox,
    readonly timeouts: { pullMs: number; listMs: number } = { pullMs: DEFAULT_PULL_TIMEOUT_MS, listMs: DEFAULT_LIST_TIMEOUT_MS },
  ) {}

  private listen(): Promise<void> {
    this.subscribing ??= (async () => {
      const sub = this.redis.duplicate();
      this.sub = sub;
      sub.on('message', (_channel: string, message: string) => {
        let reply: ImageReply;
        try {
          reply = JSON.parse(message) as ImageReply;
        } catch {
          return;
        }
        this.waiting.get(reply.id)?.(reply);
      });
      await sub.subscribe(imageRepliesChannel(this.prefix));
    })().catch((err: unknown) => {
      // Redis was not there: the next request tries again on a new connection.
      this.close();
      throw err;
    });
    return this.subscribing;
  }

  /** Sends op to workers and resolves with one answer per worker, in the order asked. */
  async ask(op: ImageOp, workers: string[], fields: { ref?: string; platform?: string; creds?: { username: string; password: string } } = {}): Promise<ImageAnswers> {
    await this.listen();
    const id = randomUUID();
    const req: ImageRequest = { id, op, workers };
    if (fields.ref !== undefined) req.ref = fields.ref;
    if (fields.platform !== undefined) req.platform = fields.platform;
    if (fields.creds) req.credsSealed = sealCreds(this.secrets, id, fields.creds);
    const got = new Map<string, ImageReply>();
    const timeoutMs = op === 'pull' ? this.timeouts.pullMs : this.timeouts.listMs;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiting.set(id, (r) => {
        if (!workers.includes(r.worker) || got.has(r.worker)) return;
        got.set(r.worker, r);
        if (got.size === workers.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.redis.publish(imageRequestsChannel(this.prefix), JSON.stringify(req)).catch(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.waiting.delete(id);
    return workers.map(
      (w) =>
        got.get(w) ?? {
          id,
          worker: w,
          ok: false as const,
          error: { code: ErrorCode.UNAVAILABLE, message: `worker ${w} did not answer the image ${op} within ${Math.round(timeoutMs / 1000)} s` },
        },
    );
  }

  close(): void {
    this.sub?.disconnect();
    this.sub = undefined;
    this.subscribing = undefined;
  }
}
