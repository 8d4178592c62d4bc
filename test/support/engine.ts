/**
 * An engine for one test file: its own state dir and cgroup root, a busybox rootfs plus
 * a layer holding the probe program, and a cleanup that proves nothing was left behind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, mountsUnder } from '../../worker/engine/engine.js';
import { buildImage } from '../../images/build.js';
import type { Container, ExitResult } from '../../worker/engine/container.js';
import type { ContainerSpec } from '../../worker/engine/spec.js';
import type { NetworkSettings } from '../../worker/engine/network/options.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The static probe program (test/fixtures/probe.c), built once per checkout. */
export function probeBinary(): string {
  const src = path.join(repo, 'test/fixtures/probe.c');
  const out = path.join(repo, 'test/fixtures/build/probe');
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(path.dirname(out), { recursive: true });
    execFileSync('cc', ['-O2', '-static', '-o', out, src]);
  }
  return out;
}

export interface ContainerRun {
  result: ExitResult;
  /** The probe's KEY=VALUE lines. */
  out: Record<string, string>;
  stdout: string;
  stderr: string;
}

/**
 * Creates, starts and waits for one container, collecting its output, then deletes it.
 * inspect sees the container before it starts.
 */
export async function runToEnd(engine: Engine, spec: ContainerSpec, inspect?: (c: Container) => void): Promise<ContainerRun> {
  const c = await engine.create(spec, { stdio: ['ignore', 'pipe', 'pipe'] });
  inspect?.(c);
  let stdout = '';
  let stderr = '';
  c.stdout!.on('data', (d) => (stdout += d));
  c.stderr!.on('data', (d) => (stderr += d));
  c.start();
  const result = await c.wait();
  await c.delete();
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return { result, out, stdout, stderr };
}

export interface TestEngine {
  engine: Engine;
  /** busybox image layer, then a layer with /probe. */
  layers: string[];
  work: string;
  cleanup(): Promise<void>;
}

/**
 * SIGKILL for one process the test made, by its pid. A pid read too early (0, or
 * NaN from an empty /proc file) would make process.kill signal the test's own process
 * group, runner and shell included: refused here.
 */
export function killPid(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to kill pid ${pid}: not one process of this test`);
  process.kill(pid, 'SIGKILL');
}

export async function testEngine(name: string, opts: { network?: NetworkSettings } = {}): Promise<TestEngine> {
  const work = mkdtempSync(path.join(tmpdir(), `faasbox-test-${name}-`));
  const image = (await buildImage('busybox', path.join(work, 'images'))).dir;
  const probeLayer = path.join(work, 'probe-layer');
  mkdirSync(probeLayer);
  copyFileSync(probeBinary(), path.join(probeLayer, 'probe'));
  execFileSync('chmod', ['0755', path.join(probeLayer, 'probe')]);
  const cgroupRoot = `/faasbox-test-${name}-${process.pid}`;
  const engine = await Engine.open({ stateDir: path.join(work, 'state'), cgroupRoot, ...(opts.network ? { network: opts.network } : {}) });
  return {
    engine,
    layers: [image, probeLayer],
    work,
    async cleanup() {
      // Closed first: a seed refill must not make new cgroups after the gc below.
      await engine.close();
      await engine.gc({ all: true });
      // The bridge and its nft table go with the last lease, which gc has just freed.
      if (engine.hasNetwork) await engine.network().close();
      const cgroupsLeft = engine.cgroups.list();
      engine.cgroups.removeRoot();
      const left = mountsUnder(work);
      rmSync(work, { recursive: true, force: true });
      if (left.length) throw new Error(`mounts left behind: ${left.join(', ')}`);
      if (cgroupsLeft.length) throw new Error(`cgroups left behind under ${cgroupRoot}: ${cgroupsLeft.join(', ')}`);
    },
  };
}
