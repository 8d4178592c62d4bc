/**
 * Where each cgroup v1 controller is mounted, from /proc/self/mountinfo (proc(5)):
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - cgroup cgroup rw,cpu,cpuacct
 *   (1)(2)(3)   (4)   (5)      (6)     (7)  (8)  (9)    (10)       (11)
 * Field 5 is the mount point; after the " - " separator come the filesystem type and
 * the super options, which for cgroup v1 name the controllers of the hierarchy, so
 * co-mounted controllers ("cpu,cpuacct") map to the same mount point.
 */
export function v1ControllerMounts(mountinfo: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup') continue;
    const mountPoint = unescapeOctal(line.slice(0, sep).split(' ')[4] ?? '');
    if (!mountPoint) continue;
    // The first mount of a hierarchy wins: later ones are usually bind mounts of it.
    for (const opt of superOpts.split(',')) if (!out.has(opt) && opt !== 'rw' && opt !== 'ro') out.set(opt, mountPoint);
  }
  return out;
}

/** The kernel writes space, tab, newline and backslash in paths as \040, \011, \012, \134. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
