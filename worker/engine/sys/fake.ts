import type { Sys } from './index.js';
import { SyscallError } from './errors.js';

export interface FakeMount { source: string | null; target: string; fstype: string | null; flags: number; data: string | null }

/** Records mounts in memory; lets unit tests check what would reach the kernel. */
export class FakeSys implements Sys {
  readonly mounts: FakeMount[] = [];
  readonly calls: string[] = [];
  failNext?: { syscall: string; errno: number };

  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
    this.calls.push(`mount ${target}`);
    this.maybeFail('mount', target);
    this.mounts.push({ source, target, fstype, flags, data });
  }

  umount(target: string, _flags: number): boolean {
    this.calls.push(`umount ${target}`);
    this.maybeFail('umount2', target);
    for (let i = this.mounts.length - 1; i >= 0; i--) {
      if (this.mounts[i]!.target === target) {
        this.mounts.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  private maybeFail(syscall: string, path: string): void {
    if (this.failNext?.syscall === syscall) {
      const { errno } = this.failNext;
      this.failNext = undefined;
      throw new SyscallError(syscall, errno, path);
    }
  }
}
