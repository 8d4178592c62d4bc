/**
 * A function's `network` as the engine's ContainerSpec.network: the piece of the
 * FunctionSpec -> ContainerSpec conversion that bridge mode adds (called from there).
 */
import type { FunctionSpec } from '../../common/function-spec.js';
import type { NetworkSpec } from '../engine/spec.js';

export function containerNetwork(spec: Pick<FunctionSpec, 'network'>): NetworkSpec {
  const n = spec.network;
  if (!n || n.mode === 'none') return { mode: 'none' };
  return {
    mode: 'bridge',
    ...(n.egress ? { egress: [...n.egress] } : {}),
    ...(n.egressMbps !== undefined ? { egressMbps: n.egressMbps } : {}),
    ...(n.ingressMbps !== undefined ? { ingressMbps: n.ingressMbps } : {}),
  };
}

/** An invocation's network traffic for its record and metrics: only where the container has eth0. */
export function netUsageOf(outcome: { netRxBytes?: number | undefined; netTxBytes?: number | undefined }): { netRxBytes?: number; netTxBytes?: number } {
  return {
    ...(outcome.netRxBytes !== undefined ? { netRxBytes: outcome.netRxBytes } : {}),
    ...(outcome.netTxBytes !== undefined ? { netTxBytes: outcome.netTxBytes } : {}),
  };
}
