/** Management of functions: deploy, list, get, versions, delete. All need the management key. */
import { Hono, type Context } from 'hono';
import { checkPackage } from '../../common/code-package.js';
import { SecretKeyError, ValidationError } from '../../common/errors.js';
import { callbackSecret } from '../../common/delivery/signature.js';
import { checkDestinations } from '../callbacks.js';
import { functionNameSchema, parseDeploy } from '../../common/function-spec.js';
import { forgetFunction } from '../../common/metrics.js';
import { parseWith } from '../../common/validation.js';
import type { KeyChecker } from '../auth.js';
import { readJson } from '../body.js';
import type { GatewayDeps } from '../deps.js';
import { functionView, versionView, type ViewOptions } from '../views.js';

/** `?reveal=env` shows env values; anything else in `reveal` is refused, not ignored. */
function viewOptions(c: Context): ViewOptions {
  const reveal = c.req.query('reveal');
  if (reveal === undefined) return {};
  if (reveal === 'env') return { revealEnv: true };
  throw new ValidationError(`invalid query: reveal must be "env", got ${JSON.stringify(reveal)}`, [{ path: 'reveal', message: 'must be "env"' }]);
}

export function functionsApp(deps: GatewayDeps, keys: KeyChecker): Hono {
  const app = new Hono();
  const { registry, config } = deps;
  const name = (raw: string) => parseWith(functionNameSchema, raw, 'function name');

  app.get('/', keys.middleware(), async (c) => {
    const functions = await registry.list();
    return c.json({ functions: functions.map((fn) => functionView(fn)) });
  });

  app.put(
    '/:name',
    keys.middleware(),
    async (c) => {
      const fnName = name(c.req.param('name'));
      const { value } = await readJson(c, { maxBytes: config.maxDeployBytes, maxDepth: config.maxJsonDepth });
      const { spec, code } = parseDeploy(fnName, value, { maxCodeBytes: config.maxCodeBytes });
      checkDestinations(deps.callbacks, { 'async.onSuccess': spec.async?.onSuccess, 'async.onFailure': spec.async?.onFailure });
      await checkPackage(spec.code, code, config.packageBounds);
      const put = await registry.put(spec, code);
      return c.json(
        { ...functionView(put.function), createdVersion: put.createdVersion, previousVersion: put.previousVersion, prunedVersions: put.prunedVersions },
        put.createdFunction ? 201 : 200,
      );
    },
  );

  app.get('/:name', keys.middleware(), async (c) => {
    const opts = viewOptions(c);
    return c.json(functionView(await registry.get(name(c.req.param('name'))), opts));
  });

  app.get('/:name/versions', keys.middleware(), async (c) => {
    const fnName = name(c.req.param('name'));
    return c.json({ name: fnName, versions: await registry.listVersions(fnName) });
  });

  app.get('/:name/versions/:version', keys.middleware(), async (c) => {
    const opts = viewOptions(c);
    return c.json(versionView(await registry.getVersion(name(c.req.param('name')), c.req.param('version')), opts));
  });

  // The key its callbacks are signed with (common/delivery/signature.ts), for the owner to verify them.
  app.get('/:name/callback-secret', keys.middleware(), async (c) => {
    const fn = await registry.get(name(c.req.param('name')));
    if (!deps.secrets) throw new SecretKeyError('this gateway has no secret key, from which callback secrets are derived: set FAASBOX_SECRET_KEY (the same for every service)');
    return c.json({
      function: fn.name,
      secret: callbackSecret(deps.secrets, fn.name),
      algorithm: 'hmac-sha256',
      signatureHeader: 'X-Faasbox-Signature',
      timestampHeader: 'X-Faasbox-Timestamp',
      signed: '<X-Faasbox-Timestamp>.<body>',
    });
  });

  app.delete('/:name', keys.middleware(), async (c) => {
    const fnName = name(c.req.param('name'));
    const { versions } = await registry.delete(fnName);
    // Its series go from this process's /metrics at once; other processes forget it on the 'deleted' event.
    await forgetFunction(deps.metrics, fnName);
    return c.json({ name: fnName, deleted: true, versions });
  });

  return app;
}
