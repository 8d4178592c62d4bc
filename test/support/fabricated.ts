/**
 * One test file's fabricated cgroup trees (worker/engine/cgroups/fabricated.ts), the
 * drivers over them and the processes put into them; all gone after each test.
 */
import { afterEach } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { detectCgroupDriver, type CgroupDriver } from '../../worker/engine/cgroups/index.js';
import { FabricatedCgroupfs, type FabricatedOptions } from '../../worker/engine/cgroups/fabricated.js';

export interface FabricatedTrees {
  /** A fresh tree of the file's cgroup version. */
  tree(opts?: FabricatedOptions): FabricatedCgroupfs;
  /** A fresh tree and a driver over it, as detectCgroupDriver finds it (v2 forced: a fabricated tree is no cgroup2 mount). */
  setup(opts?: FabricatedOptions, root?: string): { tree: FabricatedCgroupfs; driver: CgroupDriver };
  /** A process to put into cgroups: `sleep 30`, killed after the test. */
  sleeper(): ChildProcess;
}

export function fabricatedTrees(version: 1 | 2): FabricatedTrees {
  const trees: FabricatedCgroupfs[] = [];
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const t of trees.splice(0)) t.cleanup();
  });
  const tree = (opts: FabricatedOptions = {}) => {
    const t = version === 1 ? FabricatedCgroupfs.v1(opts) : FabricatedCgroupfs.v2(opts);
    trees.push(t);
    return t;
  };
  return {
    tree,
    setup(opts = {}, root = '/faasbox') {
      const t = tree(opts);
      const where = version === 1 ? { mountinfo: t.mountinfo } : { version: 2 as const };
      return { tree: t, driver: detectCgroupDriver({ root, mountRoot: t.mountRoot, fs: t.fs, ...where }) };
    },
    sleeper() {
      const c = spawn('sleep', ['30'], { stdio: 'ignore' });
      children.push(c);
      return c;
    },
  };
}
