/**
 * A pool slot's states and the only transitions allowed between them (as the engine's
 * state.ts is for a container). The pool changes a slot through these functions only;
 * policy.ts reads slots and never changes them.
 *
 *   starting ──▶ idle (stem) ──▶ specialising ──▶ busy ◀──▶ idle (warm)
 *      │             │                │            │          │
 *      │ (cold boot) └────────────────┼────────────┼──────────┤
 *      └─────────────▶ specialising   └────────────┴──────────┴──▶ removing
 *      └──▶ removing (boot failed, or the pool closed)
 *
 * starting: a container is being booted for the slot (a stem cell, or a cold start's).
 * specialising: a function's limits and load go to it; its invocation follows the load.
 * idle: a stem cell waiting for a function, or a function's warm container between
 * invocations (kind tells which). Frozen is not a state of the slot: an idle warm
 * container's processes are stopped by the freezer (the instance's freezeAfter) and
 * thawed by the instance when it is taken, so it stays selectable as idle.
 * removing: claimed for destruction; never selected again, still counted until gone.
 */
import type { Slot } from './policy.js';

export type SlotState = Slot['state'];

const NEXT: Record<SlotState, readonly SlotState[]> = {
  starting: ['idle', 'specialising', 'removing'],
  idle: ['busy', 'specialising', 'removing'],
  specialising: ['busy', 'removing'],
  busy: ['idle', 'removing'],
  removing: [],
};

export class SlotStateError extends Error {
  readonly code = 'SLOT_INVALID_STATE';
  constructor(
    readonly id: string,
    readonly from: SlotState,
    readonly to: SlotState,
  ) {
    super(`pool slot ${id} is ${from}; it cannot become ${to}`);
    this.name = 'SlotStateError';
  }
}

export function canMove(from: SlotState, to: SlotState): boolean {
  return NEXT[from].includes(to);
}

/** The one writable view of a slot, for this module alone. */
type Writable = { -readonly [K in keyof Slot]: Slot[K] };

/** Moves slot to `to`, or throws SlotStateError naming from and to. */
export function move(slot: Slot, to: SlotState): void {
  if (!canMove(slot.state, to)) throw new SlotStateError(slot.id, slot.state, to);
  (slot as Writable).state = to;
}

let seq = 0;

/** A slot for a container being booted: its id is a placeholder until booted() names it. */
export function startingSlot(kind: Slot['kind'], runtime: string, memoryMb: number, fn?: string, network?: 'bridge'): Slot {
  return { id: `pending-${++seq}`, kind, runtime, memoryMb, ...(network ? { network } : {}), ...(fn !== undefined ? { fn } : {}), state: 'starting', uses: 0, lastUsedAt: Date.now() };
}

/** The container booted: the slot takes its id and its next state (a stem idles, a cold start specialises). */
export function booted(slot: Slot, containerId: string): void {
  move(slot, slot.kind === 'stem' ? 'idle' : 'specialising');
  (slot as Writable).id = containerId;
}

/** A stem cell taken for a function: from now on the function's container. */
export function specialise(slot: Slot, fn: string): void {
  if (slot.kind !== 'stem') throw new SlotStateError(slot.id, slot.state, 'specialising');
  move(slot, 'specialising');
  (slot as Writable).kind = 'function';
  (slot as Writable).fn = fn;
}

/** An invocation is done with it. */
export function used(slot: Slot): void {
  (slot as Writable).uses++;
  (slot as Writable).lastUsedAt = Date.now();
}
