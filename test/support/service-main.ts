/**
 * One faasbox service in a process of its own, for tests that SIGTERM or SIGKILL it:
 * `node service-main.js worker|gateway|scheduler '<config JSON>'`. Prints one line
 * `ready <JSON>` once started (the gateway's url in it), and on SIGTERM stops the service
 * as `faasbox <service>` does (its close(): the drain), then exits 0 (1 if the close threw).
 */
import { startWorker } from '../../worker/main.js';
import { startGateway } from '../../gateway/main.js';
import { startScheduler } from '../../scheduler/main.js';

const [kind, json] = process.argv.slice(2);
const cfg = JSON.parse(json ?? '{}');
let close: () => Promise<unknown>;
let info: Record<string, unknown> = {};
if (kind === 'worker') {
  const w = await startWorker(cfg);
  close = () => w.close();
  info = { id: w.id };
} else if (kind === 'gateway') {
  const g = await startGateway(cfg);
  close = () => g.close();
  info = { url: g.url };
} else if (kind === 'scheduler') {
  const s = await startScheduler(cfg);
  close = () => s.close();
} else {
  throw new Error(`service-main: unknown service ${kind}`);
}
process.once('SIGTERM', () => {
  close().then(
    (r) => {
      process.stdout.write(`closed ${JSON.stringify(r ?? null)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
process.stdout.write(`ready ${JSON.stringify(info)}\n`);
setInterval(() => {}, 1 << 30);
