/**
 * `faasbox image pull` as a child process (cli/image-pull.ts's pullCommand, run the way the
 * CLI runs it), for exit codes, output, and a pull SIGKILLed in the middle.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MODULE = path.join(repo, 'dist/cli/image-pull.js');
const RUNNER = 'const m = await import(process.argv[1]); process.exitCode = await m.pullCommand(process.argv.slice(2));';

export function spawnPull(args: string[], env: NodeJS.ProcessEnv, input?: string): ChildProcess {
  const child = spawn(process.execPath, ['--input-type=module', '-e', RUNNER, MODULE, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.end(input ?? '');
  return child;
}

export interface PullRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runPull(args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<PullRun> {
  const child = spawnPull(args, env, input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}
