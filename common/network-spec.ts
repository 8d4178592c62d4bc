/**
 * The deploy body's `network`: {"mode":"none"|"bridge","egress":["CIDR[:port]"],
 * "egressMbps":N,"ingressMbps":N}. Validated here, at the edge (a bad entry is a 400
 * VALIDATION_FAILED naming it, e.g. network.egress.1); the engine checks it again when
 * it converts a ContainerSpec (worker/engine/network/spec.ts).
 */
import { z } from 'zod';

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const EGRESS = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}/(3[0-2]|[12]?\\d)(:(\\d{1,5}))?$`);

/** "a.b.c.d/n" with no host bits set, optionally ":port" (1-65535). */
export function isEgressEntry(s: string): boolean {
  const m = EGRESS.exec(s);
  if (!m) return false;
  const [addr, rest] = s.split('/') as [string, string];
  const prefix = Number(rest.split(':')[0]);
  const a = addr.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const hostBits = prefix === 32 ? 0 : a % 2 ** (32 - prefix);
  const port = m[7] === undefined ? 1 : Number(m[7]);
  return hostBits === 0 && port >= 1 && port <= 65535;
}

export const MAX_MBPS = 100_000;
const mbps = z.number().positive().max(MAX_MBPS);

export const networkSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('none') }),
  z.strictObject({
    mode: z.literal('bridge'),
    egress: z.array(z.string().refine(isEgressEntry, 'must be an IPv4 CIDR without host bits, optionally :port (1-65535), e.g. 203.0.113.0/24:443')).max(256).optional(),
    egressMbps: mbps.optional(),
    ingressMbps: mbps.optional(),
  }),
]);

export type FunctionNetwork = z.infer<typeof networkSchema>;
