/**
 * Bridge networking's cost, in one run, each comparison interleaved: the specialised
 * start in bridge vs none mode through the real pool (network-pool.ts); container create in bridge vs none
 * mode; per-container network setup against the shell floor (`ip netns add` + a veth
 * pair with its peer made in the namespace + address + up, as one script); and HTTP
 * request throughput from a bridge container to an outside namespace of the bench's own
 * against the same client (busybox nc in a loop) on the host. Everything stays inside
 * this machine: containers on 198.51.100.0/24, the outside on 203.0.113.0/24, and the
 * tests' net guard counts anything heading for a real interface.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Engine } from '../worker/engine/engine.js';
import { buildImage } from '../images/build.js';
import { interleave, median, round, type Contender } from './stats.js';
import { installNetGuard } from '../test/support/net-guard.js';
import { makeOutside } from '../test/support/outside.js';
import { HTTP_PORT, outsideServersCode } from '../test/support/outside-servers.js';
import type { ContainerSpec } from '../worker/engine/spec.js';
import { specialisedStarts } from './network-pool.js';

const SUBNET = '198.51.100.0/24';

function sh(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (c) => (c === 0 ? resolve(out) : reject(new Error(`sh exited ${c}: ${err}`))));
  });
}

/** N sequential HTTP requests through busybox nc; prints "seconds count-of-answers". */
const clientLoop = (bb: string, host: string, n: number): string =>
  `a=$(cut -d' ' -f1 /proc/uptime); ok=0; i=0; while [ $i -lt ${n} ]; do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | ${bb}nc -w 3 ${host} ${HTTP_PORT}); case "$r" in *outside-ok*) ok=$((ok+1));; esac; i=$((i+1)); done; b=$(cut -d' ' -f1 /proc/uptime); echo "$a $b $ok"`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { iterations: { type: 'string', default: '30' }, requests: { type: 'string', default: '200' }, rounds: { type: 'string', default: '40' } } });
  const iterations = Number(values.iterations);
  const requests = Number(values.requests);
  const rounds = Number(values.rounds);
  for (const [k, v] of Object.entries({ iterations, requests, rounds })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a whole number >= 1, not ${JSON.stringify(values[k as keyof typeof values])}`);
  }
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-bench-network-'));
  const guard = installNetGuard([SUBNET]);
  const out = makeOutside();
  let engine: Engine | undefined;
  try {
    await out.serve(outsideServersCode(out.address));
    // First, and on its own state dir: the worker's bridge is gone (with its stem cells'
    // leases) before the engine below makes its own on the same subnet.
    const starts = await specialisedStarts(path.join(work, 'pool'), SUBNET, rounds);
    const image = await buildImage('busybox', path.join(work, 'images'));
    engine = await Engine.open({ stateDir: path.join(work, 'state'), cgroupRoot: `/faasbox-bench-${process.pid}`, network: { subnet: SUBNET } });
    const e = engine;
    const spec = (mode: 'none' | 'bridge', args = ['/bin/true']): ContainerSpec => ({ rootfs: { layers: [image.dir] }, process: { args }, network: { mode } });
    let n = 0;
    const contenders: Record<string, Contender> = {
      none_create: async () => {
        const c = await e.create(spec('none'));
        return () => c.delete();
      },
      bridge_create: async () => {
        const c = await e.create(spec('bridge'));
        return () => c.delete();
      },
      shell_floor: async () => {
        const id = `fbxs${randomBytes(3).toString('hex')}${n++}`;
        await sh(`ip netns add ${id} && ip link add ${id} type veth peer name eth0 netns ${id} && ip -n ${id} addr add 198.51.100.250/24 dev eth0 && ip -n ${id} link set eth0 up && ip link set ${id} up`);
        return async () => void (await sh(`ip link del ${id} 2>/dev/null; ip netns del ${id}`));
      },
    };
    process.stderr.write(`bench network: ${iterations} iterations of ${Object.keys(contenders).join(', ')}, interleaved\n`);
    const samples = await interleave(contenders, iterations);
    const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));

    // Throughput: the same busybox client loop, on the host and in a bridge container.
    const hostRun = (await sh(clientLoop('busybox ', out.address, requests))).trim().split(/\s+/).map(Number);
    const c = await e.create(spec('bridge', ['/bin/sh', '-c', clientLoop('', out.address, requests)]), { stdio: ['ignore', 'pipe', 'ignore'] });
    let o = '';
    c.stdout!.on('data', (d) => (o += d));
    c.start();
    await c.wait();
    await c.delete();
    const inRun = o.trim().split(/\s+/).map(Number);
    const rate = (r: number[]): number => r[2]! / Math.max(0.01, r[1]! - r[0]!);
    const ratio = rate(inRun) / rate(hostRun);

    const sp = { none: median(starts.none), bridge: median(starts.bridge) };
    console.log(`specialised start p50: none ${sp.none.toFixed(2)} ms, bridge ${sp.bridge.toFixed(2)} ms: bridge - none = ${(sp.bridge - sp.none).toFixed(2)} ms (target <= 0.5)`);
    for (const mode of ['none', 'bridge'] as const) {
      console.log(`  ${mode.padEnd(6)} worker's phases, p50 ms: ${[...starts.phases[mode]].map(([p, v]) => `${p} ${median(v).toFixed(2)}`).join(', ')}`);
    }
    console.log('contender       median ms');
    for (const [k, v] of Object.entries(m)) console.log(`${k.padEnd(14)}  ${v!.toFixed(2).padStart(9)}`);
    console.log(`bridge/none create = ${(m.bridge_create! / m.none_create!).toFixed(3)} (target <= 1.2)`);
    console.log(`bridge setup (create delta) ${(m.bridge_create! - m.none_create!).toFixed(2)} ms vs shell floor ${m.shell_floor!.toFixed(2)} ms`);
    console.log(`requests/s: bridge container ${rate(inRun).toFixed(0)} (${inRun[2]} ok), host ${rate(hostRun).toFixed(0)} (${hostRun[2]} ok); ratio ${ratio.toFixed(3)} (target >= 0.8)`);
    guard.check();
    console.log(JSON.stringify({ bench: 'network', none_specialized_p50_ms: round(sp.none), bridge_specialized_p50_ms: round(sp.bridge), none_create_ms: round(m.none_create!), bridge_create_ms: round(m.bridge_create!), shell_floor_ms: round(m.shell_floor!), throughput_ratio: round(ratio, 3) }));
  } finally {
    if (engine) {
      await engine.close();
      await engine.gc({ all: true });
      if (engine.hasNetwork) await engine.network().close();
      engine.cgroups.removeRoot?.();
    }
    out.close();
    guard.remove();
    rmSync(work, { recursive: true, force: true });
  }
}
