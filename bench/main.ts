/**
 * `npm run bench -- <name>`: side-by-side benchmarks. Each prints a human table and
 * ends with one JSON line, so that scripts can pick up the figures.
 */
const BENCHES: Record<string, () => Promise<{ main: (argv: string[]) => Promise<void> }>> = {
  engine: () => import('./engine.js'),
  invoke: () => import('./invoke.js'),
  coldstart: () => import('./coldstart.js'),
  thaw: () => import('./thaw.js'),
  events: () => import('./events.js'),
  network: () => import('./network.js'),
  image: () => import('./image.js'),
};

const USAGE = `usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [options]

  engine     [--iterations 40]          create+start+wait of a container: faasbox, runc, unshare
  invoke     [--n 400] [--seconds 5]    warm invocations through HTTP against bare BullMQ and HTTP
  coldstart  [--n 25] [--warmup 3]      warm, specialised and cold starts against \`node -e 0\`
                                        (--n measured rounds, after --warmup unmeasured ones)
  thaw       [--n 50] [--idle 300]      a warm invocation after an idle pause: thawed (frozen while
                                        idle) against never frozen, and back to back
  events     [--n 2000] [--rounds 3] [--concurrency 16] [--cron-seconds 10]
             [--only triggers,cron,accept,fsync]
                                        queue-trigger throughput (1 and batches of 10) against the bare
                                        BullMQ drain, cron delay, async accept beside sync invoke, async
                                        accepts with Redis appendfsync always against everysec
  network    [--iterations 30] [--requests 200] [--rounds 40]
                                        specialised start bridge vs none through the pool, create
                                        bridge vs none, network setup vs the shell floor, HTTP
                                        throughput bridge container vs host
  image      [--iterations 5] [--big-mb 1024] [--peers-only]
                                        pull + unpack of nodejs20 from a local registry: faasbox,
                                        skopeo+umoci, podman; incremental bytes; peak RSS, 1 GB layer

Each prints a table and ends with one JSON line.`;

const [name, ...rest] = process.argv.slice(2);
if (name === '--help' || name === '-h') {
  console.log(USAGE);
  process.exit(0);
}
const load = name ? BENCHES[name] : undefined;
if (!load) {
  console.error(USAGE);
  process.exit(2);
}
try {
  await (await load()).main(rest);
} catch (err) {
  console.error(`bench ${name}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
