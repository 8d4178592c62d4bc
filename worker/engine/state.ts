/**
 * Container states and the only transitions allowed between them.
 *
 *   creating ──▶ created ──▶ running ─────────▶ stopped ──▶ deleted
 *       │           │         ▲    │            ▲  ▲
 *       │           │    thaw │    │ freeze     │  │
 *       │           │         │    ▼            │  │
 *       │           │         frozen ───────────┘  │  (killed while frozen)
 *       │           └──────────────────────────────┘  (killed while parked)
 *       └──▶ deleted (creation failed and was undone)
 *
 * frozen: every process stopped by the cgroup freezer (an idle warm container); only a
 * thaw makes it running again (start() is for created containers only).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { EngineError } from './errors.js';

export type Status = 'creating' | 'created' | 'running' | 'frozen' | 'stopped' | 'deleted';

const NEXT: Record<Status, readonly Status[]> = {
  creating: ['created', 'deleted'],
  created: ['running', 'stopped'],
  running: ['frozen', 'stopped'],
  frozen: ['running', 'stopped'],
  stopped: ['deleted'],
  deleted: [],
};

export function canTransition(from: Status, to: Status): boolean {
  return NEXT[from].includes(to);
}

export function assertTransition(id: string, from: Status, to: Status): void {
  if (!canTransition(from, to)) {
    throw new EngineError('INVALID_STATE', `container ${id} is ${from}; it cannot become ${to}`, { id, from, to });
  }
}

/** What is persisted in <stateDir>/containers/<id>/state.json, for `ctr list`, `ctr state` and gc. */
export interface PersistedState {
  id: string;
  status: Status;
  /** Host pid of the container's init (pid 1 inside), once known. */
  pid?: number;
  /** The process that owns the container (a worker or a CLI), and its start time, to survive pid reuse. */
  owner: { pid: number; startTime: string };
  createdAt: string;
  rootfs: string;
  args: string[];
  cgroup: string;
  exit?: { exitCode: number | null; signal: number | null; oomKilled: boolean };
  /** userns mode: container ids 0..size-1 are host ids hostId.. (userns/ranges.ts). */
  userns?: { hostId: number; size: number };
}

export function writeState(file: string, state: PersistedState): void {
  // A plain write, not write-then-rename: rename costs ~0.3 ms on ext4 and this is on the
  // container start path. A reader that catches the file mid-write gets undefined from
  // readState and treats the container as unknown (gc leaves unknown young ones alone).
  writeFileSync(file, JSON.stringify(state));
}

export function readState(file: string): PersistedState | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as PersistedState;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat: with the pid, it identifies a process even after pid reuse. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

export function isAlive(owner: { pid: number; startTime: string }): boolean {
  return processStartTime(owner.pid) === owner.startTime;
}

let self: { pid: number; startTime: string } | undefined;
export function selfOwner(): { pid: number; startTime: string } {
  self ??= { pid: process.pid, startTime: processStartTime(process.pid) ?? '0' };
  return self;
}
