/**
 * Container start: create + start + wait + delete of a busybox `true` container from a
 * prepared snapshot, side by side in one run with `runc run` on the same rootfs and
 * with `unshare --pid --fork --mount --uts --ipc --net true` as the floor.
 *
 * faasbox is measured inside this long-lived process, as the worker uses the engine;
 * runc and unshare are measured as the processes they are, spawned from the same
 * process, so each figure includes its own fork+exec.
 */
import { engineEnv } from '../cli/engine-env.js';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../worker/engine/engine.js';
import { buildImage } from '../images/build.js';
import { interleave, median, round, percentile, type Contender } from './stats.js';

function runProcess(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

function runcBundle(dir: string, rootfs: string): string {
  const bundle = path.join(dir, 'runc-bundle');
  execFileSync('mkdir', ['-p', bundle]);
  execFileSync('runc', ['spec', '--bundle', bundle]);
  const spec = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  spec.root = { path: rootfs, readonly: true };
  spec.process.terminal = false;
  spec.process.args = ['/bin/true'];
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { iterations: { type: 'string', default: '40' } } });
  const iterations = Number(values.iterations);
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-bench-engine-'));
  const runcRoot = path.join(work, 'runc-state');
  let engine: Engine | undefined;
  try {
    process.stderr.write('bench engine: building the busybox image...\n');
    const image = await buildImage('busybox', path.join(work, 'images'));
    const rootfs = image.dir;
    engine = await Engine.open({ ...engineEnv(), stateDir: path.join(work, 'state'), cgroupRoot: `/faasbox-bench-${process.pid}` });
    const haveRunc = existsSync('/usr/sbin/runc') || existsSync('/usr/bin/runc');
    const bundle = haveRunc ? runcBundle(work, rootfs) : '';
    let n = 0;
    const deletes: number[] = [];
    const spec = { rootfs: { layers: [rootfs] }, process: { args: ['/bin/true'] } };
    const contenders: Record<string, Contender> = {
      // create + start + wait, timed; delete right after, timed separately.
      faasbox: async () => {
        const c = await engine!.create(spec, { stdio: ['ignore', 'ignore', 'ignore'] });
        c.start();
        const r = await c.wait();
        if (r.exitCode !== 0) throw new Error(`faasbox container exited ${JSON.stringify(r)}`);
        return async () => {
          const t = performance.now();
          await c.delete();
          deletes.push(performance.now() - t);
        };
      },
      floor: () => runProcess('unshare', ['--pid', '--fork', '--mount', '--uts', '--ipc', '--net', 'true']),
    };
    if (haveRunc) contenders.runc = () => runProcess('runc', ['--root', runcRoot, 'run', '--bundle', bundle, `faasbox-bench-${process.pid}-${n++}`]);
    process.stderr.write(`bench engine: ${iterations} iterations of ${Object.keys(contenders).join(', ')}, interleaved\n`);
    const samples = await interleave(contenders, iterations);

    const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
    console.log('contender   median ms   p90 ms');
    for (const [k, v] of Object.entries(samples)) console.log(`${k.padEnd(10)}  ${median(v).toFixed(2).padStart(9)}  ${percentile(v, 90).toFixed(2).padStart(7)}`);
    console.log(`faasbox delete (untimed above) median ${median(deletes).toFixed(2)} ms`);
    console.log(`faasbox/runc  = ${m.runc ? (m.faasbox! / m.runc).toFixed(3) : 'n/a'} (target <= 0.2)`);
    console.log(`faasbox/floor = ${(m.faasbox! / m.floor!).toFixed(3)} (target <= 1.5)`);
    console.log(JSON.stringify({ bench: 'engine', faasbox_ms: round(m.faasbox!), faasbox_delete_ms: round(median(deletes)), runc_ms: m.runc ? round(m.runc) : null, floor_ms: round(m.floor!) }));
  } finally {
    if (engine) {
      await engine.close(); // its parked seeds and its zygote first
      await engine.gc({ all: true });
      engine.cgroups.removeRoot?.();
    }
    rmSync(work, { recursive: true, force: true });
  }
}
