/**
 * GET /v1/invocations/:id: the record of an invocation. Whoever may invoke the function may
 * read its invocations (for a public function: anyone holding the unguessable id); once the
 * function is deleted, only the management key.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { InvocationNotFoundError } from '../../common/errors.js';
import { parseWith } from '../../common/validation.js';
import type { KeyChecker } from '../auth.js';
import type { GatewayDeps } from '../deps.js';

export const invocationIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'invocation ids are 1-128 characters of [A-Za-z0-9_-]');

export function invocationsApp(deps: GatewayDeps, keys: KeyChecker): Hono {
  const app = new Hono();

  app.get('/:id', async (c) => {
    const id = parseWith(invocationIdSchema, c.req.param('id'), 'invocation id');
    const record = await deps.invocations.get(id);
    const fn = record ? await deps.registry.find(record.function) : undefined;
    // Same rule as for function names: without a valid key, existence is not revealed.
    keys.requireInvoke(c, fn?.spec);
    if (!record) throw new InvocationNotFoundError(id);
    return c.json(record);
  });

  return app;
}
