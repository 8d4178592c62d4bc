/**
 * A function's dead letters (common/delivery/dead-letters.ts), with the management key:
 *   GET    /v1/functions/:name/dead-letters?cursor=&limit=   a page, oldest first
 *   GET    /v1/functions/:name/dead-letters/:id
 *   POST   /v1/functions/:name/dead-letters/redrive          {"all":true} | {"ids":[...]}, "version"?
 *   DELETE /v1/functions/:name/dead-letters[?ids=a,b]        all, or those
 *   DELETE /v1/functions/:name/dead-letters/:id
 * A redrive accepts each entry's event again as a new async invocation (source
 * {kind:"redrive"}) and removes the entry once that is accepted.
 */
import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { DeadLetterNotFoundError, FaasboxError, FunctionNotFoundError } from '../../common/errors.js';
import { functionNameSchema } from '../../common/function-spec.js';
import { acceptAsync } from '../../common/delivery/accept.js';
import { DeadLetters, MAX_PAGE, type DeadLetter } from '../../common/delivery/dead-letters.js';
import { IdempotencyKeys } from '../../common/delivery/idempotency.js';
import { QueuedBytes } from '../../common/queued-bytes.js';
import { bodyFields, type InvocationJob } from '../../common/queue.js';
import { parseWith } from '../../common/validation.js';
import type { KeyChecker } from '../auth.js';
import { readJson } from '../body.js';
import type { GatewayDeps } from '../deps.js';
import { invocationIdSchema } from './invocations.js';

const pageQuerySchema = z.strictObject({
  cursor: z.string().regex(/^\d{1,20}$/, 'cursor is the nextCursor of the previous page').optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(100),
});

const idsSchema = z.array(invocationIdSchema).min(1).max(MAX_PAGE);

const redriveSchema = z
  .strictObject({
    all: z.literal(true).optional(),
    ids: idsSchema.optional(),
    version: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a version id (sha256:...)').optional(),
  })
  .refine((b) => (b.all === undefined) !== (b.ids === undefined), { message: 'give exactly one of "all": true or "ids"', path: ['ids'] });

export function deadLettersApp(deps: GatewayDeps, keys: KeyChecker): Hono {
  const app = new Hono();
  const { registry, config } = deps;
  const store = new DeadLetters(deps.redis, config.prefix, config.limits.deadLettersPerFunction);
  const accept = {
    invocations: deps.invocations,
    queue: deps.queue,
    queued: new QueuedBytes(deps.redis, config.prefix),
    idempotency: new IdempotencyKeys(deps.redis, config.prefix),
    roomBytes: config.limits.queuedBytesPerFunction,
  };
  /** The function's name; a function deleted since keeps its dead letters readable, and redrive refuses. */
  const fnName = (c: Context) => parseWith(functionNameSchema, c.req.param('name'), 'function name');

  app.get('/:name/dead-letters', keys.middleware(), async (c) => {
    const name = fnName(c);
    const q = parseWith(pageQuerySchema, c.req.query(), 'query');
    const page = await store.list(name, { limit: q.limit, ...(q.cursor ? { cursor: q.cursor } : {}) });
    return c.json({ function: name, total: await store.count(name), deadLetters: page.entries.map(view), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) });
  });

  app.get('/:name/dead-letters/:id', keys.middleware(), async (c) => {
    const name = fnName(c);
    const id = parseWith(invocationIdSchema, c.req.param('id'), 'dead letter id');
    const entry = await store.get(name, id);
    if (!entry) throw new DeadLetterNotFoundError(name, id);
    return c.json(view(entry));
  });

  app.post('/:name/dead-letters/redrive', keys.middleware(), async (c) => {
    const name = fnName(c);
    const { value } = await readJson(c, { maxBytes: 256 * 1024, maxDepth: config.maxJsonDepth });
    const body = parseWith(redriveSchema, value, 'redrive body');
    const fn = await registry.find(name);
    if (!fn) throw new FunctionNotFoundError(name);
    // To the function's current version unless another is named (which must exist).
    const version = body.version ?? fn.version;
    const spec = version === fn.version ? fn.spec : (await registry.getVersion(name, version)).spec;
    const ids = body.ids ?? (await store.ids(name));
    const redriven: { id: string; invocationId: string }[] = [];
    const notRedriven: { id: string; error: { code: string; message: string } }[] = [];
    for (const id of ids) {
      const entry = await store.get(name, id);
      if (!entry) {
        notRedriven.push({ id, error: { code: 'DEAD_LETTER_NOT_FOUND', message: `no dead letter ${id}` } });
        continue;
      }
      const now = Date.now();
      const job: InvocationJob = {
        invocationId: randomUUID(),
        function: name,
        version,
        ...bodyFields(entry.event, Buffer.from(JSON.stringify(entry.event) ?? '')),
        ...(entry.http ? { http: entry.http } : {}),
        mode: 'async',
        enqueuedAt: now,
        deadline: now + config.asyncMaxAgeMs,
        delivery: { source: { kind: 'redrive', deadLetter: id } },
      };
      try {
        const accepted = await acceptAsync(accept, spec, job);
        await store.remove(name, [id]);
        redriven.push({ id, invocationId: accepted.invocationId });
      } catch (err) {
        // QUEUE_FULL stops the rest: they stay dead letters, to redrive later.
        if (!(err instanceof FaasboxError)) throw err;
        notRedriven.push({ id, error: { code: err.code, message: err.message } });
        if (err.code === 'QUEUE_FULL') break;
      }
    }
    return c.json({ function: name, version, redriven, notRedriven });
  });

  app.delete('/:name/dead-letters', keys.middleware(), async (c) => {
    const name = fnName(c);
    const raw = c.req.query('ids');
    const ids = raw === undefined ? undefined : parseWith(idsSchema, raw.split(','), 'query parameter ids');
    return c.json({ function: name, deleted: await store.remove(name, ids) });
  });

  app.delete('/:name/dead-letters/:id', keys.middleware(), async (c) => {
    const name = fnName(c);
    const id = parseWith(invocationIdSchema, c.req.param('id'), 'dead letter id');
    if ((await store.remove(name, [id])) === 0) throw new DeadLetterNotFoundError(name, id);
    return c.json({ function: name, deleted: 1 });
  });

  return app;
}

/** The entry as shown: the redrive's copy of the request headers stays inside. */
function view(entry: DeadLetter) {
  const { http: _http, ...shown } = entry;
  return shown;
}
