/**
 * The container side of userns mode: leasing a range for a config, and the idmapped
 * views of its bind sources and of the code a slot receives (sys/idmap.ts).
 */
import { closeSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import type { ContainerConfig } from '../config.js';
import { EngineError, InvalidSpecError } from '../errors.js';
import { mountIdmapped } from '../sys/idmap.js';
import { SyscallError } from '../sys/index.js';
import { idmappedOverlaySupported, UsernsUnsupportedError } from './namespace.js';
import type { IdRange, IdRanges } from './ranges.js';

/** A range for the container, once the kernel and its uid/gid are known to fit (release it on failure). */
export function leaseRange(config: ContainerConfig, ranges: IdRanges | undefined): IdRange {
  if (!idmappedOverlaySupported()) throw new UsernsUnsupportedError('OverlayFS over idmapped layers (Linux 5.19+)');
  if (!ranges) throw new EngineError('CREATE_FAILED', 'userns mode needs an engine with id ranges');
  for (const [f, v] of [['process.uid', config.uid], ['process.gid', config.gid]] as const) {
    if (v >= ranges.size) throw new InvalidSpecError(f, `must be below ${ranges.size} in userns mode (the ids a container maps), got ${v}`);
  }
  return ranges.allocate(config.id);
}

/** Mounts hostDir on a slot's host mount point through the mapping of the container's own namespace: host root's code is its root's. */
export function fillSlotIdmapped(initPid: number, hostDir: string, slotHostPath: string): void {
  const fd = openSync(`/proc/${initPid}/ns/user`, 'r');
  try {
    mountIdmapped(hostDir, slotHostPath, fd, { readonly: true });
  } catch (err) {
    if (err instanceof SyscallError && err.errno === 22) throw new UsernsUnsupportedError(`idmapped mounts of the filesystem holding ${hostDir} (tmpfs has them from Linux 6.3)`);
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** userns mode: the bind sources marked idmap, each seen through an idmapped view under paths.binds. */
export function idmappedBinds(config: ContainerConfig, usernsFd: number): ContainerConfig['binds'] {
  mkdirSync(config.paths.binds, { mode: 0o700 });
  return config.binds.map((b, i) => {
    if (!b.idmap) return b;
    const view = `${config.paths.binds}/${i}`;
    if (statSync(b.source).isDirectory()) mkdirSync(view);
    else writeFileSync(view, '', { mode: 0o600 });
    try {
      mountIdmapped(b.source, view, usernsFd);
    } catch (err) {
      if (err instanceof SyscallError && err.errno === 22) throw new UsernsUnsupportedError(`idmapped mounts of the filesystem holding ${b.source} (tmpfs has them from Linux 6.3)`);
      throw err;
    }
    return { ...b, source: view };
  });
}
