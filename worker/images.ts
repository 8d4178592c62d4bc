/**
 * The worker's side of image requests (common/image-requests.ts): it listens on the
 * requests channel, and for each one naming it pulls into its own store (through the
 * puller, engine/image/puller.ts) or lists its store, and publishes its answer. A request's
 * credentials are opened here, used for that pull alone, and never logged.
 */
import type { Redis } from 'ioredis';
import { FaasboxError, InternalError, ValidationError, type ErrorInfo } from '../common/errors.js';
import { imageRefSchema, platformOf, platformSchema } from '../common/image-request-spec.js';
import { imageRepliesChannel, imageRequestsChannel, openCreds, parseImageRequest, type ImageReply, type ImageRequest, type WorkerImage } from '../common/image-requests.js';
import type { SecretBox } from '../common/secrets.js';
import { imagesDirOf } from './engine/image/paths.js';
import { loadPuller } from './engine/image/puller.js';
import type { PullImage, PullOptions } from './engine/image/pull-types.js';
import { ImageStore } from './engine/image/store.js';

export interface ImageRequestOptions {
  /** The worker's connection: answers are published on it; the subscription gets a duplicate of it. */
  redis: Redis;
  prefix: string;
  workerId: string;
  stateDir: string;
  secrets?: SecretBox | undefined;
  /** Where the puller comes from; default loadPuller (UNAVAILABLE in a build without pull.ts). */
  puller?: () => Promise<PullImage>;
  log?: (line: string) => void;
}

function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof FaasboxError) return { code: err.code, message: err.message };
  // Not ours: its message may say anything (a path, a URL with credentials); a code and a plain line only.
  return new InternalError(`the image request failed: ${(err as Error).name ?? 'Error'}`).toInfo();
}

export class ImageRequestServer {
  private readonly sub: Redis;
  private readonly store: ImageStore;
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();

  constructor(private readonly opts: ImageRequestOptions) {
    this.sub = opts.redis.duplicate();
    this.store = new ImageStore(opts.stateDir);
  }

  async start(): Promise<void> {
    this.sub.on('message', (_channel: string, message: string) => {
      const req = parseImageRequest(message);
      if (!req || !req.workers.includes(this.opts.workerId)) return;
      const p = this.handle(req).catch((err: Error) => this.opts.log?.(`image request ${req.id}: could not answer: ${err.message}`));
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
    });
    await this.sub.subscribe(imageRequestsChannel(this.opts.prefix));
  }

  private async answer(req: ImageRequest): Promise<ImageReply> {
    const base = { id: req.id, worker: this.opts.workerId };
    try {
      if (req.op === 'list') {
        const images: WorkerImage[] = this.store.list().map((i) => ({ digest: i.digest, tags: i.tags, size: i.size, ...(i.platform ? { platform: i.platform } : {}), ...(i.pulledAt ? { pulledAt: i.pulledAt } : {}) }));
        return { ...base, ok: true, images };
      }
      // Checked at the gateway; again here, since anyone on this Redis can publish.
      const ref = imageRefSchema.safeParse(req.ref);
      if (!ref.success) throw new ValidationError('invalid image pull request: ref is not an image reference', [{ path: 'ref', message: ref.error.issues[0]?.message ?? 'invalid' }]);
      const options: PullOptions = { signal: this.abort.signal };
      if (req.platform !== undefined) {
        if (!platformSchema.safeParse(req.platform).success) throw new ValidationError('invalid image pull request: platform', [{ path: 'platform', message: 'must be os/architecture[/variant]' }]);
        options.platform = platformOf(req.platform);
      }
      if (req.credsSealed !== undefined) options.creds = openCreds(this.opts.secrets, req.id, req.credsSealed);
      const pull = await (this.opts.puller ?? loadPuller)();
      const result = await pull(imagesDirOf(this.opts.stateDir), ref.data, options);
      this.opts.log?.(`pulled ${result.ref} (${result.manifestDigest}, ${result.transferredBytes} bytes fetched)`);
      return { ...base, ok: true, digest: result.manifestDigest, ref: result.ref };
    } catch (err) {
      return { ...base, ok: false, error: errorInfo(err) };
    }
  }

  private async handle(req: ImageRequest): Promise<void> {
    const reply = await this.answer(req);
    await this.opts.redis.publish(imageRepliesChannel(this.opts.prefix), JSON.stringify(reply));
  }

  /** Stops listening; pulls under way are aborted and answered as such. */
  async close(): Promise<void> {
    await this.sub.quit().catch(() => {});
    this.abort.abort();
    await Promise.allSettled([...this.running]);
  }
}
