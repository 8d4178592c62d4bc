/**
 * Measures the Node.js shim's boot: spawn -> "ready" on fd 4, on the host (no container),
 * with an empty environment, as the worker starts it. Used to choose the runtime's flags.
 *
 *   node dist/images/nodejs/measure-boot.js [runs] [-- extra node flags...]
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nodeRuntimeEntry } from '../sources.js';

export interface BootSample {
  /** Wall time from spawn() to the ready line, as the parent saw it. */
  wallMs: number;
  /** The runtime's own bootMs (process start -> ready). */
  bootMs: number;
}

export function bootOnce(nodeFlags: readonly string[] = []): Promise<BootSample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...nodeFlags, nodeRuntimeEntry()], {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe'],
      env: {},
    });
    let buf = '';
    const replies = child.stdio[4] as import('node:stream').Readable;
    replies.setEncoding('utf8');
    replies.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const wallMs = performance.now() - t0;
      const msg = JSON.parse(buf.slice(0, nl)) as { type: string; bootMs: number };
      (child.stdio[3] as NodeJS.WritableStream).end();
      child.once('exit', () => resolve({ wallMs, bootMs: msg.bootMs }));
    });
    child.once('error', reject);
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function measureBoot(runs: number, nodeFlags: readonly string[] = []): Promise<{ wallMs: number; bootMs: number; samples: BootSample[] }> {
  const samples: BootSample[] = [];
  await bootOnce(nodeFlags); // warm the page cache
  for (let i = 0; i < runs; i++) samples.push(await bootOnce(nodeFlags));
  return { wallMs: median(samples.map((s) => s.wallMs)), bootMs: median(samples.map((s) => s.bootMs)), samples };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dd = process.argv.indexOf('--');
  const runs = Number(process.argv[2] && process.argv[2] !== '--' ? process.argv[2] : 20);
  const flags = dd >= 0 ? process.argv.slice(dd + 1) : [];
  const r = await measureBoot(runs, flags);
  console.log(JSON.stringify({ runs, flags, medianWallMs: +r.wallMs.toFixed(2), medianBootMs: +r.bootMs.toFixed(2) }));
}
