/**
 * `npm run bench -- <name>`: side-by-side benchmarks. Each prints a human table and
 * ends with one JSON line, so that scripts can pick up the figures.
 */
const BENCHES: Record<string, () => Promise<{ main: (argv: string[]) => Promise<void> }>> = {
  engine: () => import('./engine.js'),
  invoke: () => import('./invoke.js'),
  coldstart: () => import('./coldstart.js'),
};

const [name, ...rest] = process.argv.slice(2);
const load = name ? BENCHES[name] : undefined;
if (!load) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [options]`);
  process.exit(2);
}
await (await load()).main(rest);
