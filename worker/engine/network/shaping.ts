/**
 * Bandwidth limits on a bridge container's veth: a token bucket (tbf) on each direction's
 * egress side. Download (ingressMbps) is shaped where packets leave the host towards the
 * container, the host end of the veth; upload (egressMbps) on the container's eth0,
 * inside its namespace (the container has no CAP_NET_ADMIN to remove it). One `tc` per
 * direction at container setup, only for containers that ask for a limit; seeds and
 * stem cells get theirs when they are created, off the request path.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** tbf arguments for a rate: the bucket holds 10 ms of traffic, at least 16 KiB (one rate/HZ and a few MTUs). */
export function tbfArgs(dev: string, mbps: number): string[] {
  const burst = Math.max(16 * 1024, Math.round((mbps * 1e6) / 8 / 100));
  return ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${Math.round(mbps * 1000)}kbit`, 'burst', String(burst), 'latency', '100ms'];
}

export async function shape(o: { hostVeth: string; pid: number; ingressMbps?: number | undefined; egressMbps?: number | undefined }): Promise<void> {
  const jobs: Promise<unknown>[] = [];
  if (o.ingressMbps) jobs.push(run('tc', tbfArgs(o.hostVeth, o.ingressMbps)));
  if (o.egressMbps) jobs.push(run('nsenter', [`--net=/proc/${o.pid}/ns/net`, 'tc', ...tbfArgs('eth0', o.egressMbps)]));
  await Promise.all(jobs);
}
