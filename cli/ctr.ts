/**
 * `faasbox ctr ...`: the container engine for operators, in the spirit of runc/crun.
 * Scriptable: exit codes mirror the container's, --json everywhere output is data.
 */
import { engineEnv } from './engine-env.js';
import { parseArgs } from 'node:util';
import { Engine } from '../worker/engine/engine.js';
import { DEFAULTS, type ContainerSpec } from '../worker/engine/spec.js';
import { EngineError } from '../worker/engine/errors.js';
import { settingsFromEnv } from '../worker/engine/network/options.js';
import { CliError, parseBytes, parseNumber, wantsHelp } from './args.js';
import { imageSpec } from './ctr-image.js';

const HELP = `Usage: faasbox ctr <command> [options]

Commands:
  run [options] -- CMD [ARGS...]   run one container in the foreground; exits with CMD's exit code
  list [--json]                    containers in the state dir
  state ID [--json]                one container's state
  kill ID [SIGNAL]                 signal a container (SIGKILL, the default, kills its whole cgroup)
  delete ID                        kill and remove a container
  gc [--all] [--json]              remove what crashed owners left: containers, cgroups, mounts

Options for run:
  --rootfs DIR        rootfs directory (a read-only lower layer); repeat --layer for more layers
  --layer DIR         an extra layer on top of the previous ones (repeatable)
  --image REF         run an image from the store (REF: repo[:tag], repo@sha256:..., sha256:...);
                      its Entrypoint, Cmd, Env, WorkingDir, User and StopSignal are the defaults,
                      CMD after -- replaces its Cmd
  --pull              pull REF first when the store does not have it
  --memory SIZE       memory limit, swap disabled (e.g. 32m, 1g; default ${DEFAULTS.memoryBytes / 1024 / 1024}m)
  --cpus N            CPU quota in cores (default 1)
  --pids N            pids limit (default ${DEFAULTS.pids})
  --disk SIZE         size of the container's writable layer (default ${DEFAULTS.diskBytes / 1024 / 1024}m)
  --hostname NAME     hostname inside (default: the container id)
  --env KEY=VALUE     environment variable (repeatable); nothing of the caller's is inherited
  --cwd DIR           working directory inside (default /)
  --user UID[:GID]    user to run as (default 65534:65534)
  --id ID             container id (default: random)
  --read-bps SIZE     block I/O limits on the disk of the state dir, per second (e.g. 5m);
  --write-bps SIZE    see also --read-iops N and --write-iops N (default: none)
  --userns            a user namespace of its own: root inside is an unprivileged host id
                      range leased to this container (default: $FAASBOX_USERNS=1 turns it on)
  --network MODE      none (default: loopback only) or bridge (eth0 on the worker's bridge;
                      needs FAASBOX_NET_SUBNET, and FAASBOX_NET_DENY / FAASBOX_NET_DNS apply)
  --egress CIDR[:PORT]  bridge mode: allow only these destinations (repeatable)
  --json              print the exit result as JSON on stderr after the command ends

Global:
  --state-dir DIR     state directory (default $FAASBOX_STATE_DIR or /var/lib/faasbox)
  -h, --help          this help

On OOM, run prints "OOM" on stderr and exits with 137.`;

const GLOBAL_HELP = `  --state-dir DIR     state directory (default $FAASBOX_STATE_DIR or /var/lib/faasbox)
  -h, --help          this help`;

/** Each command's own usage, for "faasbox ctr CMD --help" (which never runs CMD). */
const USAGE: Record<string, string> = {
  run: HELP.slice(HELP.indexOf('Options for run:')).replace('Options for run:', 'Usage: faasbox ctr run [options] -- CMD [ARGS...]\n\nRuns one container in the foreground; exits with CMD\'s exit code.\n\nOptions:'),
  list: `Usage: faasbox ctr list [--json]\n\nThe containers in the state dir (alias: ls).\n\n  --json              as JSON\n${GLOBAL_HELP}`,
  state: `Usage: faasbox ctr state ID [--json]\n\nOne container's state.\n\n  --json              as one line of JSON\n${GLOBAL_HELP}`,
  kill: `Usage: faasbox ctr kill ID [SIGNAL]\n\nSignals a container; SIGKILL, the default, kills its whole cgroup.\n\n${GLOBAL_HELP}`,
  delete: `Usage: faasbox ctr delete ID [--json]\n\nKills and removes a container (alias: rm).\n\n  --json              print what was removed as JSON\n${GLOBAL_HELP}`,
  gc: `Usage: faasbox ctr gc [--all] [--json]\n\nRemoves what crashed owners left: containers, cgroups, mounts, image pins.\n\n  --all               also containers whose owner is alive\n  --json              print what was removed as JSON\n${GLOBAL_HELP}`,
};
const ALIASES: Record<string, string> = { ls: 'list', rm: 'delete' };

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP);
    return cmd ? 0 : 2;
  }
  const usage = USAGE[ALIASES[cmd] ?? cmd];
  if (usage && wantsHelp(rest)) {
    console.log(usage);
    return 0;
  }
  switch (cmd) {
    case 'run':
      return run(rest);
    case 'list':
    case 'ls':
      return list(rest);
    case 'state':
      return state(rest);
    case 'kill':
      return kill(rest);
    case 'delete':
    case 'rm':
      return del(rest);
    case 'gc':
      return gc(rest);
    default:
      throw new CliError(`unknown command "ctr ${cmd}"; see faasbox ctr --help`);
  }
}

const globalOpts = { 'state-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } } as const;

function openEngine(stateDir: string | undefined, network = false): Promise<Engine> {
  // Bridge settings are read here, at the edge, and only for a bridge run: other
  // commands never make the worker's bridge or table.
  const settings = network ? settingsFromEnv(process.env) : undefined;
  return Engine.open({ ...engineEnv(), ...(stateDir ? { stateDir } : {}), ...(settings ? { network: settings } : {}) });
}

async function run(args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  const optArgs = dash >= 0 ? args.slice(0, dash) : args;
  const command = dash >= 0 ? args.slice(dash + 1) : [];
  const { values, positionals } = parseArgs({
    args: optArgs,
    allowPositionals: true,
    options: {
      ...globalOpts,
      rootfs: { type: 'string' },
      layer: { type: 'string', multiple: true },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      pids: { type: 'string' },
      disk: { type: 'string' },
      hostname: { type: 'string' },
      env: { type: 'string', multiple: true },
      cwd: { type: 'string' },
      user: { type: 'string' },
      id: { type: 'string' },
      userns: { type: 'boolean' },
      'read-bps': { type: 'string' },
      'write-bps': { type: 'string' },
      'read-iops': { type: 'string' },
      'write-iops': { type: 'string' },
      image: { type: 'string' },
      pull: { type: 'boolean' },
      network: { type: 'string' },
      egress: { type: 'string', multiple: true },
    },
  });
  const cmdline = command.length ? command : positionals;
  if (values.image !== undefined && (values.rootfs !== undefined || values.layer !== undefined)) throw new CliError('run takes --image or --rootfs/--layer, not both');
  if (values.pull && values.image === undefined) throw new CliError('--pull needs --image REF');
  const fromImage = values.image !== undefined ? await imageSpec(values.image, values.pull ?? false, values['state-dir'], { cmd: cmdline, user: values.user, env: values.env, cwd: values.cwd }) : undefined;
  if (!fromImage && !values.rootfs) throw new CliError('run needs --rootfs DIR or --image REF');
  if (!fromImage && cmdline.length === 0) throw new CliError('run needs a command after --');
  const spec: ContainerSpec = fromImage?.spec ?? {
    rootfs: { layers: [values.rootfs!, ...(values.layer ?? [])] },
    process: { args: cmdline, env: values.env ?? [] },
    limits: {},
  };
  if (values.id) spec.id = values.id;
  if (values.userns || process.env.FAASBOX_USERNS === '1') spec.userns = true;
  const io = {
    ...(values['read-bps'] ? { readBps: parseBytes('--read-bps', values['read-bps']) } : {}),
    ...(values['write-bps'] ? { writeBps: parseBytes('--write-bps', values['write-bps']) } : {}),
    ...(values['read-iops'] ? { readIops: parseNumber('--read-iops', values['read-iops'], 'whole') } : {}),
    ...(values['write-iops'] ? { writeIops: parseNumber('--write-iops', values['write-iops'], 'whole') } : {}),
  };
  if (Object.keys(io).length) spec.io = io;
  if (values.memory) spec.limits!.memoryBytes = parseBytes('--memory', values.memory);
  if (values.cpus) spec.limits!.cpus = parseNumber('--cpus', values.cpus, 'positive');
  if (values.pids) spec.limits!.pids = parseNumber('--pids', values.pids, 'positive');
  if (values.disk) spec.rootfs.diskBytes = parseBytes('--disk', values.disk);
  if (values.hostname) spec.hostname = values.hostname;
  if (values.network !== undefined && values.network !== 'none' && values.network !== 'bridge') throw new CliError(`--network must be none or bridge, got ${JSON.stringify(values.network)}`);
  if (values.egress && values.network !== 'bridge') throw new CliError('--egress needs --network bridge');
  if (values.network === 'bridge') spec.network = { mode: 'bridge', ...(values.egress ? { egress: values.egress } : {}) };
  if (values.cwd && !fromImage) spec.process.cwd = values.cwd;
  if (values.user && !fromImage) {
    const [u, g] = values.user.split(':');
    spec.process.uid = parseNumber('--user', u!, 'whole');
    spec.process.gid = g === undefined ? spec.process.uid : parseNumber('--user', g, 'whole');
  }
  const engine = await openEngine(values['state-dir'], values.network === 'bridge');
  // The image's StopSignal is what a stop (SIGTERM to ctr run) becomes inside.
  const stopSignal = fromImage?.stopSignal ?? 'SIGTERM';
  const forward = (sig: NodeJS.Signals) => () => void current?.kill(sig === 'SIGTERM' ? stopSignal : sig).catch(() => {});
  let current: import('../worker/engine/container.js').Container | undefined;
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    const result = await engine.run(spec, { stdio: ['inherit', 'inherit', 'inherit'] }, (c) => (current = c));
    if (result.error) process.stderr.write(`faasbox: ${result.error}\n`);
    if (result.oomKilled) process.stderr.write('OOM\n');
    if (values.json) process.stderr.write(`${JSON.stringify(result)}\n`);
    if (result.signal !== null) return 128 + result.signal;
    return result.exitCode ?? 1;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    // Releases what the engine holds for its containers (the state tmpfs) once none is left.
    await engine.close();
  }
}

async function list(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: globalOpts });
  const engine = await openEngine(values['state-dir']);
  const all = engine.list();
  await engine.close();
  if (values.json) {
    console.log(JSON.stringify(all));
    return 0;
  }
  console.log(['ID'.padEnd(20), 'STATUS'.padEnd(10), 'PID'.padEnd(8), 'CREATED'.padEnd(25), 'COMMAND'].join(' '));
  for (const s of all) {
    console.log([s.id.padEnd(20), s.status.padEnd(10), String(s.pid ?? '-').padEnd(8), s.createdAt.padEnd(25), s.args.join(' ')].join(' '));
  }
  return 0;
}

/** The container a command names (its first positional), with the engine holding it. */
async function existing(args: string[], verb: string) {
  const { values, positionals } = parseArgs({ args, options: globalOpts, allowPositionals: true });
  const id = positionals[0];
  if (!id) throw new CliError(`${verb} needs a container id`);
  const engine = await openEngine(values['state-dir']);
  const s = engine.state(id);
  if (!s) {
    await engine.close();
    throw new EngineError('CONTAINER_NOT_FOUND', `no container ${id}`);
  }
  return { values, positionals, id, engine, state: s };
}

async function state(args: string[]): Promise<number> {
  const { values, engine, state: s } = await existing(args, 'state');
  await engine.close();
  console.log(JSON.stringify(s, null, values.json ? undefined : 2));
  return 0;
}

async function kill(args: string[]): Promise<number> {
  const { positionals, id, engine, state: s } = await existing(args, 'kill');
  const sig = positionals[1] ?? 'SIGKILL';
  const signal = (sig.startsWith('SIG') ? sig : `SIG${sig}`).toUpperCase() as NodeJS.Signals;
  try {
    if (signal === 'SIGKILL') {
      await engine.cgroups.open(id)?.kill();
    } else if (s.pid) {
      process.kill(s.pid, signal);
    }
  } finally {
    await engine.close();
  }
  return 0;
}

async function del(args: string[]): Promise<number> {
  const { values, id, engine } = await existing(args, 'delete');
  await engine.cgroups.open(id)?.destroy();
  const report = await engine.gc({ all: true, only: id });
  await engine.close();
  if (values.json) console.log(JSON.stringify(report));
  return 0;
}

async function gc(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...globalOpts, all: { type: 'boolean' } } });
  const engine = await openEngine(values['state-dir']);
  const report = await engine.gc({ all: values.all ?? false });
  await engine.close();
  if (values.json) console.log(JSON.stringify(report));
  else console.log(`removed ${report.containers.length} containers, ${report.cgroups.length} cgroups, ${report.mounts.length} mounts${report.images ? `, ${report.images.length} image pins` : ''}`);
  return 0;
}
