/**
 * Images: POST /v1/images pulls an image onto every live worker and answers with its
 * digest; GET /v1/images lists what the workers' stores hold, merged by digest. Both need
 * the management key. The workers do the work (common/image-requests.ts carries the
 * request and their answers); this validates, asks, and turns the answers into one reply.
 */
import { Hono } from 'hono';
import { ErrorCode, FaasboxError, UnavailableError, isErrorCode } from '../../common/errors.js';
import { parseImagePull } from '../../common/image-request-spec.js';
import { liveWorkers, type ImageReply, type WorkerImage } from '../../common/image-requests.js';
import type { KeyChecker } from '../auth.js';
import { readJson } from '../body.js';
import type { GatewayDeps } from '../deps.js';

/** A reference, credentials and a platform: a few KiB at most. */
const MAX_IMAGE_BODY_BYTES = 16 * 1024;

interface WorkerOutcome {
  id: string;
  ok: boolean;
  error?: { code: string; message: string };
}

const outcome = (r: ImageReply): WorkerOutcome => (r.ok ? { id: r.worker, ok: true } : { id: r.worker, ok: false, error: { code: r.error.code, message: r.error.message } });

async function workersOrThrow(deps: GatewayDeps): Promise<string[]> {
  const workers = await liveWorkers(deps.redis, deps.config.prefix);
  if (workers.length === 0) throw new UnavailableError('no live worker to ask: none has reported in the last 5 s');
  return workers;
}

export function imagesApp(deps: GatewayDeps, keys: KeyChecker): Hono {
  const app = new Hono();

  app.post('/', keys.middleware(), async (c) => {
    const { value } = await readJson(c, { maxBytes: MAX_IMAGE_BODY_BYTES, maxDepth: deps.config.maxJsonDepth });
    const req = parseImagePull(value);
    const workers = await workersOrThrow(deps);
    const answers = await deps.images.ask('pull', workers, { ref: req.ref, ...(req.platform ? { platform: req.platform } : {}), ...(req.creds ? { creds: req.creds } : {}) });
    const digests = [...new Set(answers.flatMap((a) => (a.ok && a.digest ? [a.digest] : [])))];
    const body = { ref: answers.flatMap((a) => (a.ok && a.ref ? [a.ref] : []))[0] ?? req.ref, digest: digests[0] ?? null, workers: answers.map(outcome) };
    const failed = answers.find((a): a is Extract<ImageReply, { ok: false }> => !a.ok);
    if (failed) {
      // Every worker was to have it: one that did not makes the request fail, with that
      // worker's code (the same registry answers all of them alike, as a rule).
      const code = isErrorCode(failed.error.code) ? failed.error.code : ErrorCode.INTERNAL;
      const n = answers.filter((a) => !a.ok).length;
      throw new FaasboxError(code, `${n} of ${answers.length} workers could not pull ${req.ref}; worker ${failed.worker}: ${failed.error.message}`, { details: body });
    }
    if (digests.length > 1) {
      // A tag moved between two workers' pulls: they hold different images under one name.
      throw new FaasboxError(ErrorCode.DIGEST_MISMATCH, `the workers resolved ${req.ref} to ${digests.length} different digests (the tag moved while they pulled); pull it by digest`, { details: body });
    }
    return c.json(body);
  });

  app.get('/', keys.middleware(), async (c) => {
    const workers = await workersOrThrow(deps);
    const answers = await deps.images.ask('list', workers);
    const byDigest = new Map<string, WorkerImage & { workers: string[] }>();
    for (const a of answers) {
      if (!a.ok) continue;
      for (const img of a.images ?? []) {
        const seen = byDigest.get(img.digest);
        if (seen) {
          seen.workers.push(a.worker);
          seen.tags = [...new Set([...seen.tags, ...img.tags])].sort();
        } else {
          byDigest.set(img.digest, { ...img, tags: [...img.tags].sort(), workers: [a.worker] });
        }
      }
    }
    return c.json({ images: [...byDigest.values()].sort((x, y) => x.digest.localeCompare(y.digest)), workers: answers.map(outcome) });
  });

  return app;
}
