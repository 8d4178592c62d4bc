import { readFileSync } from 'node:fs';

/**
 * Mount points at or below dir, from /proc/self/mountinfo, deepest first (the order to
 * unmount them in). Stacked mounts on one point appear once per layer.
 */
export function mountsUnder(dir: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    // mountinfo escapes space, tab, newline and backslash as octal.
    const p = field.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === dir || p.startsWith(prefix)) points.push(p);
  }
  return points.sort((a, b) => b.length - a.length);
}
