/** Management of functions: deploy, list, get, versions, delete. All need the management key. */
import { Hono } from 'hono';
import { functionNameSchema, parseDeploy } from '../../common/function-spec.js';
import { parseWith } from '../../common/validation.js';
import type { KeyChecker } from '../auth.js';
import { readJson } from '../body.js';
import type { GatewayDeps } from '../deps.js';
import { functionView, versionView } from '../views.js';

export function functionsApp(deps: GatewayDeps, keys: KeyChecker): Hono {
  const app = new Hono();
  const { registry, config } = deps;
  const name = (raw: string) => parseWith(functionNameSchema, raw, 'function name');

  app.get('/', keys.middleware(), async (c) => {
    const functions = await registry.list();
    return c.json({ functions: functions.map(functionView) });
  });

  app.put(
    '/:name',
    keys.middleware(),
    async (c) => {
      const fnName = name(c.req.param('name'));
      const { value } = await readJson(c, { maxBytes: config.maxDeployBytes });
      const { spec, code } = parseDeploy(fnName, value, { maxCodeBytes: config.maxCodeBytes });
      const put = await registry.put(spec, code);
      return c.json(
        { ...functionView(put.function), createdVersion: put.createdVersion, previousVersion: put.previousVersion, prunedVersions: put.prunedVersions },
        put.createdFunction ? 201 : 200,
      );
    },
  );

  app.get('/:name', keys.middleware(), async (c) => {
    return c.json(functionView(await registry.get(name(c.req.param('name')))));
  });

  app.get('/:name/versions', keys.middleware(), async (c) => {
    const fnName = name(c.req.param('name'));
    return c.json({ name: fnName, versions: await registry.listVersions(fnName) });
  });

  app.get('/:name/versions/:version', keys.middleware(), async (c) => {
    return c.json(versionView(await registry.getVersion(name(c.req.param('name')), c.req.param('version'))));
  });

  app.delete('/:name', keys.middleware(), async (c) => {
    const fnName = name(c.req.param('name'));
    const { versions } = await registry.delete(fnName);
    return c.json({ name: fnName, deleted: true, versions });
  });

  return app;
}
