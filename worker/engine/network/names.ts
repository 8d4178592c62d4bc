/** What the worker's network objects are called and addressed by: all from a hash of its state dir, so a restarted worker finds its own. */
import { createHash } from 'node:crypto';

/** Names of the worker's bridge, veths and table, from a hash of its state dir. */
export function networkNames(stateDir: string): { bridge: string; vethPrefix: string; table: string } {
  const h = createHash('sha256').update(stateDir).digest('hex').slice(0, 6);
  // IFNAMSIZ: 15 characters; the veth's suffix is the address's offset in hex (<= 5 for a /12).
  return { bridge: `fbx${h}`, vethPrefix: `fbx${h}-`, table: `fbx-${h}` };
}

/** The bridge's fixed MAC: locally administered, unicast, from the state dir's hash (stable across restarts). */
export function bridgeMac(stateDir: string): Buffer {
  const h = createHash('sha256').update(`bridge-mac:${stateDir}`).digest();
  const mac = Buffer.from(h.subarray(0, 6));
  mac[0] = (mac[0]! & 0xfc) | 0x02;
  return mac;
}
