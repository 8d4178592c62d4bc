/** ContainerSpec.network checked and turned into what the engine needs (called by config.ts's toConfig). */
import { InvalidSpecError } from '../errors.js';
import { CidrError, parseEgress } from './cidr.js';
import type { BridgeRequest } from './network.js';

export type NetworkSpec =
  | { mode: 'none' }
  | {
      mode: 'bridge';
      /** Allowlist "CIDR[:port]"; absent: anything the worker's deny list does not block. */
      egress?: string[];
      /** Upload limit, Mbit/s. */
      egressMbps?: number;
      /** Download limit, Mbit/s. */
      ingressMbps?: number;
    };

/** Upper bound of a bandwidth limit: above it, tbf's bucket arithmetic stops meaning anything here. */
export const MAX_MBPS = 100_000;

export function bridgeRequestOf(net: NetworkSpec | undefined): { mode: 'none' | 'bridge'; bridge?: BridgeRequest } {
  const mode = net?.mode ?? 'none';
  if (mode === 'none') return { mode };
  if (mode !== 'bridge') throw new InvalidSpecError('network.mode', `must be "none" or "bridge", got ${JSON.stringify(mode)}`);
  const n = net as Extract<NetworkSpec, { mode: 'bridge' }>;
  const req: BridgeRequest = {};
  if (n.egress !== undefined) {
    if (!Array.isArray(n.egress)) throw new InvalidSpecError('network.egress', 'must be a list of "CIDR[:port]"');
    req.egress = n.egress.map((e, i) => {
      try {
        return parseEgress(e);
      } catch (err) {
        throw new InvalidSpecError(`network.egress[${i}]`, (err as CidrError).message);
      }
    });
  }
  for (const k of ['egressMbps', 'ingressMbps'] as const) {
    const v = n[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v > 0 && v <= MAX_MBPS)) throw new InvalidSpecError(`network.${k}`, `must be a number in (0, ${MAX_MBPS}] Mbit/s, got ${JSON.stringify(v)}`);
    req[k] = v;
  }
  return { mode, bridge: req };
}
