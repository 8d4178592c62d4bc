/**
 * Services in processes of their own (service-main.ts), so that a test can really
 * SIGTERM (drain) or SIGKILL (crash) them. Every signal goes to the one pid spawned.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const entry = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'service-main.js');

export type ServiceKind = 'worker' | 'gateway' | 'scheduler';

export interface ServiceProcess {
  kind: ServiceKind;
  child: ChildProcess;
  pid: number;
  /** What the service printed when ready: the gateway's url, the worker's id. */
  info: { url?: string; id?: string };
  /** What close() resolved with, once the service printed it (after a SIGTERM). */
  closed?: unknown;
  /** Resolves with the exit code (null when killed by a signal). */
  exited(): Promise<number | null>;
  /** SIGTERM, then waits for the exit. */
  term(): Promise<number | null>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  readonly alive: boolean;
}

export async function spawnService(kind: ServiceKind, cfg: Record<string, unknown>): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [entry, kind, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const alive = () => child.exitCode === null && child.signalCode === null;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const proc: ServiceProcess = {
    kind,
    child,
    pid: child.pid!,
    info: {},
    exited: () => exit,
    async term() {
      if (alive()) child.kill('SIGTERM');
      return exit;
    },
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exit;
    },
    get alive() {
      return alive();
    },
  };
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('ready ')) {
          proc.info = JSON.parse(line.slice(6));
          resolve();
        } else if (line.startsWith('closed ')) proc.closed = JSON.parse(line.slice(7));
      }
    });
    void exit.then((code) => reject(new Error(`${kind} process exited with ${code} before it was ready`)));
  });
  return proc;
}
