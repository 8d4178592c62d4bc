/** What the engine reads about a host process from /proc. A process that is gone reads as nothing. */
import { readFileSync } from 'node:fs';

/** Direct children of a process (its main thread's). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const SIGKILL_BIT = 1n << 8n;

/** SIGKILL among a process's pending signals (SigPnd: its main thread's, ShdPnd: the whole process's). */
export function sigkillPending(pid: number): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  for (const m of status.matchAll(/^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$/gm)) if ((BigInt(`0x${m[1]}`) & SIGKILL_BIT) !== 0n) return true;
  return false;
}
