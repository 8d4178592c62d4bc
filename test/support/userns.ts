/**
 * Whether this kernel can run userns containers over layers in the temp dir: idmapped
 * OverlayFS layers need 5.19+, and idmapped tmpfs (the cgroup v2 VM keeps everything on
 * tmpfs) 6.3+. A reason to skip, or false; test/worker/engine/userns.test.ts asserts the
 * refusal where it applies.
 */
import { release, tmpdir } from 'node:os';
import { blockDeviceOf } from '../../worker/engine/blockdev.js';
import { idmappedOverlaySupported } from '../../worker/engine/userns/namespace.js';

export function usernsUnavailable(): string | false {
  if (!idmappedOverlaySupported()) return `Linux ${release()} has no idmapped OverlayFS layers (5.19+); userns.test.ts tests the refusal`;
  const [major, minor] = release().split('.').map(Number);
  const onTmpfs = blockDeviceOf(tmpdir()).device === undefined;
  if (onTmpfs && (major! < 6 || (major === 6 && minor! < 3))) return `the layers are on tmpfs, idmapped only from Linux 6.3 (this is ${release()}); userns.test.ts tests the refusal`;
  return false;
}
