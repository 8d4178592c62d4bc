/**
 * Measures the Python runtime's boot, to choose its flags and to compare it with a bare
 * interpreter (needs root: real containers):
 *
 *   node dist/images/python3/measure-boot.js [runs]
 *
 * Prints medians of `runs` (after one warm-up each) of:
 *   host.bare        spawn -> exit of `/usr/bin/python3 -I -S -c pass`
 *   host.shim        spawn -> "ready" of the shim with the image's flags (and its own bootMs)
 *   container.bare   start -> exit of the same bare command in a container from the image
 *   container.shim   start -> "ready" of the shim in a container (and its own bootMs);
 *                    create -> "ready" as well, which is what a cold start pays
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../worker/engine/engine.js';
import { buildImage } from '../build.js';
import { imagesSourceDir } from '../sources.js';
import { PYTHON_FLAGS, RUNTIME_COMMAND } from '../protocol.js';

const HOST_PYTHON = '/usr/bin/python3';
const BARE = [HOST_PYTHON, '-I', '-S', '-c', 'pass'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Resolves with the first line on `stream`. */
function firstLine(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    stream.setEncoding('utf8');
    const onData = (d: string): void => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        stream.off('data', onData);
        resolve(buf.slice(0, nl));
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`no line before EOF (got ${JSON.stringify(buf)})`)));
  });
}

function hostBare(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(BARE[0]!, BARE.slice(1), { stdio: 'ignore', env: {} });
    child.once('exit', () => resolve(performance.now() - t0));
    child.once('error', reject);
  });
}

async function hostShim(): Promise<{ wallMs: number; bootMs: number }> {
  const t0 = performance.now();
  const entry = path.join(imagesSourceDir(), 'python3', 'runtime', 'runtime.py');
  const child = spawn(HOST_PYTHON, [...PYTHON_FLAGS, entry], { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe'], env: {} });
  const line = await firstLine(child.stdio[4] as Readable);
  const wallMs = performance.now() - t0;
  const exited = new Promise((r) => child.once('exit', r));
  (child.stdio[3] as NodeJS.WritableStream).end();
  await exited;
  return { wallMs, bootMs: (JSON.parse(line) as { bootMs: number }).bootMs };
}

async function containerBare(engine: Engine, layer: string): Promise<number> {
  const c = await engine.create({ rootfs: { layers: [layer] }, process: { args: BARE } }, { stdio: ['ignore', 'ignore', 'ignore'] });
  const t0 = performance.now();
  c.start();
  const ex = await c.wait();
  const ms = performance.now() - t0;
  await c.delete();
  if (ex.exitCode !== 0) throw new Error(`bare python exited ${ex.exitCode}`);
  return ms;
}

async function containerShim(engine: Engine, layer: string): Promise<{ createToReadyMs: number; startToReadyMs: number; bootMs: number }> {
  const t0 = performance.now();
  const c = await engine.create(
    { rootfs: { layers: [layer] }, process: { args: [...RUNTIME_COMMAND.python3], cwd: '/tmp' } },
    { stdio: ['ignore', 'ignore', 'ignore'], extraFds: ['pipe', 'pipe'] },
  );
  const ready = firstLine(c.extraStream(1));
  const t1 = performance.now();
  c.start();
  const line = await ready;
  const t2 = performance.now();
  c.extraStream(0).end();
  await c.wait();
  await c.delete();
  return { createToReadyMs: t2 - t0, startToReadyMs: t2 - t1, bootMs: (JSON.parse(line) as { bootMs: number }).bootMs };
}

export async function measure(runs: number): Promise<Record<string, number>> {
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-pyboot-'));
  const engine = await Engine.open({ stateDir: path.join(work, 'state'), cgroupRoot: `/faasbox-pyboot-${process.pid}` });
  try {
    const layer = (await buildImage('python3', path.join(work, 'images'))).dir;
    const series = async <T>(f: () => Promise<T>): Promise<T[]> => {
      await f(); // page cache, first-use costs
      const out: T[] = [];
      for (let i = 0; i < runs; i++) out.push(await f());
      return out;
    };
    const hb = await series(hostBare);
    const hs = await series(hostShim);
    const cb = await series(() => containerBare(engine, layer));
    const cs = await series(() => containerShim(engine, layer));
    const r = (n: number): number => Math.round(n * 10) / 10;
    return {
      'host.bare.wallMs': r(median(hb)),
      'host.shim.wallMs': r(median(hs.map((s) => s.wallMs))),
      'host.shim.bootMs': r(median(hs.map((s) => s.bootMs))),
      'container.bare.startToExitMs': r(median(cb)),
      'container.shim.startToReadyMs': r(median(cs.map((s) => s.startToReadyMs))),
      'container.shim.createToReadyMs': r(median(cs.map((s) => s.createToReadyMs))),
      'container.shim.bootMs': r(median(cs.map((s) => s.bootMs))),
    };
  } finally {
    await engine.gc({ all: true });
    engine.cgroups.removeRoot();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const runs = Number(process.argv[2] ?? 15);
  console.log(JSON.stringify({ runs, ...(await measure(runs)) }, null, 2));
}
