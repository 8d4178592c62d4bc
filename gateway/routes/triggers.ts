/**
 * Triggers: PUT/GET/DELETE /v1/triggers/:name, GET /v1/triggers, POST .../pause|resume.
 * All need the management key. The scheduler's runner does the work (scheduler/triggers/);
 * this only validates and stores, and shows the state the runner reports.
 */
import { Hono } from 'hono';
import { FunctionNotFoundError, VersionNotFoundError } from '../../common/errors.js';
import { parseTriggerSpec, triggerNameSchema } from '../../common/trigger-spec.js';
import { checkDestinations } from '../callbacks.js';
import { TriggerStore, type TriggerRecord, type TriggerState } from '../../common/triggers.js';
import { parseWith } from '../../common/validation.js';
import type { KeyChecker } from '../auth.js';
import { readJson } from '../body.js';
import type { GatewayDeps } from '../deps.js';

/** Largest trigger body: a spec, never data. */
const MAX_TRIGGER_BYTES = 64 * 1024;

function triggerView(t: TriggerRecord, state?: TriggerState) {
  // The source's Redis URL may carry a password: shown without it.
  const source = 'redisUrl' in t.spec.source && t.spec.source.redisUrl ? { ...t.spec.source, redisUrl: redactUrl(t.spec.source.redisUrl) } : t.spec.source;
  return { name: t.name, ...t.spec, source, paused: t.paused, createdAt: t.createdAt, updatedAt: t.updatedAt, ...(state ? { state } : {}) };
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return u;
  }
}

export function triggersApp(deps: GatewayDeps, keys: KeyChecker): Hono {
  const app = new Hono();
  const store = new TriggerStore(deps.redis, deps.config.prefix);
  const name = (raw: string) => parseWith(triggerNameSchema, raw, 'trigger name');

  app.get('/', keys.middleware(), async (c) => {
    const all = await store.list();
    return c.json({ triggers: await Promise.all(all.map(async (t) => triggerView(t, await store.state(t.name)))) });
  });

  app.put('/:name', keys.middleware(), async (c) => {
    const trigger = name(c.req.param('name'));
    const { value } = await readJson(c, { maxBytes: MAX_TRIGGER_BYTES, maxDepth: deps.config.maxJsonDepth });
    const spec = parseTriggerSpec(value);
    checkDestinations(deps.callbacks, { onSuccess: spec.onSuccess, onFailure: spec.onFailure });
    if (spec.version) {
      const versions = await deps.registry.listVersions(spec.function); // 404 FUNCTION_NOT_FOUND
      if (!versions.some((v) => v.version === spec.version)) throw new VersionNotFoundError(spec.function, spec.version);
    } else if (!(await deps.registry.currentVersion(spec.function))) {
      throw new FunctionNotFoundError(spec.function);
    }
    const put = await store.put(trigger, spec);
    return c.json(triggerView(put.trigger), put.created ? 201 : 200);
  });

  app.get('/:name', keys.middleware(), async (c) => {
    const trigger = name(c.req.param('name'));
    const t = await store.get(trigger);
    return c.json(triggerView(t, await store.state(trigger)));
  });

  app.delete('/:name', keys.middleware(), async (c) => {
    const trigger = name(c.req.param('name'));
    await store.delete(trigger);
    return c.json({ name: trigger, deleted: true });
  });

  for (const action of ['pause', 'resume'] as const) {
    app.post(`/:name/${action}`, keys.middleware(), async (c) => {
      const t = await store.setPaused(name(c.req.param('name')), action === 'pause');
      return c.json(triggerView(t, await store.state(t.name)));
    });
  }

  return app;
}
