/**
 * The `faasbox` command: dispatches to the services and tools. Each subcommand module
 * exports main(argv) -> exit code and throws typed errors; what one throws is told here,
 * by report.ts, as a message and an exit code.
 */
import { exitCodeOf, printError } from './report.js';

const HELP = `Usage: faasbox <command> [options]

Commands:
  up             start the all-in-one stack (redis, gateway, worker, scheduler) on this machine
  deploy NAME    deploy or update a function
  invoke NAME    invoke a function
  logs ID        an invocation's record: status, result, stdout/stderr
  ls | get NAME | rm NAME
                 list, show, delete functions
  gateway | worker | scheduler
                 run one service in the foreground (configuration by env or --config FILE)
  dlq ...        a function's dead letters (ls, show, redrive, purge)
  ctr ...        the container engine (run, list, state, kill, delete, gc)
  image ...      the image store: pull, ls, inspect, rm, prune; build runtime images
  trigger ...    queue, stream and cron triggers (add, ls, get, rm, pause, resume)

Run "faasbox <command> --help" for a command's options.`;

type Main = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Main>> = {
  up: async () => (await import('./services.js')).up,
  gateway: async () => (argv) => import('./services.js').then((m) => m.service('gateway', argv)),
  worker: async () => (argv) => import('./services.js').then((m) => m.service('worker', argv)),
  scheduler: async () => (argv) => import('./services.js').then((m) => m.service('scheduler', argv)),
  deploy: async () => (await import('./client.js')).deploy,
  invoke: async () => (await import('./client.js')).invoke,
  logs: async () => (await import('./client.js')).logs,
  ls: async () => (await import('./client.js')).ls,
  get: async () => (await import('./client.js')).get,
  rm: async () => (await import('./client.js')).rm,
  dlq: async () => (await import('./dlq.js')).main,
  ctr: async () => (await import('./ctr.js')).main,
  image: async () => (await import('./images.js')).main,
  trigger: async () => (await import('./trigger.js')).main,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === '--version' || cmd === 'version') {
    console.log('faasbox 0.1.0');
    return 0;
  }
  const load = COMMANDS[cmd];
  if (!load) {
    console.error(`faasbox: unknown command "${cmd}"\n\n${HELP}`);
    return 2;
  }
  return (await load())(rest);
}

function report(err: unknown): number {
  printError(err);
  return exitCodeOf(err);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.exitCode = report(err);
  },
);
