/**
 * "The outside" for network tests: a network namespace of the test's own, reached from
 * the host through a veth pair and the connected route of its addresses (the first /26
 * of TEST-NET-3, 203.0.113.0/26), plus a /32 route the test adds for each extra address it holds (a
 * stand-in for cloud metadata at 169.254.169.254). Servers run inside it as child
 * processes (`ip netns exec`). close() ends them and removes the namespace, the veth
 * and the routes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { once } from 'node:events';

export interface Outside {
  ns: string;
  hostVeth: string;
  /** The host's address on the link, and the namespace's. */
  hostAddress: string;
  address: string;
  /** Runs node code inside the namespace; resolves once it prints "ready". */
  serve(code: string): Promise<ChildProcess>;
  /** Runs a command inside the namespace. */
  exec(args: string[]): string;
  close(): void;
}

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

export function makeOutside(o: { net?: string; extra?: string[] } = {}): Outside {
  const sfx = randomBytes(3).toString('hex');
  const ns = `fbxt-out-${sfx}`;
  const hostVeth = `fbxto${sfx}`;
  const net = o.net ?? '203.0.113';
  const hostAddress = `${net}.1`;
  const address = `${net}.2`;
  const extra = o.extra ?? [];
  const children: ChildProcess[] = [];
  const routes: string[] = [];
  // A /26, not the whole /24: on this workplace's machines the package mirrors answer at
  // an address of 203.0.113.0/24 beyond .63, and a connected /24 on the host would take
  // their traffic into this namespace for as long as the test runs (apt and npm then fail).
  ip('netns', 'add', ns);
  try {
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('addr', 'add', `${hostAddress}/26`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    // Replies to containers arrive here and are forwarded to the bridge.
    writeFileSync(`/proc/sys/net/ipv4/conf/${hostVeth}/forwarding`, '1');
    ip('-n', ns, 'addr', 'add', `${address}/26`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'route', 'add', 'default', 'via', hostAddress);
    for (const a of extra) {
      ip('-n', ns, 'addr', 'add', `${a}/32`, 'dev', 'lo');
      ip('route', 'add', `${a}/32`, 'via', address, 'dev', hostVeth);
      routes.push(`${a}/32`);
    }
  } catch (err) {
    try {
      ip('netns', 'del', ns);
    } catch {}
    throw err;
  }
  return {
    ns,
    hostVeth,
    hostAddress,
    address,
    async serve(code) {
      const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(p);
      let out = '';
      p.stdout!.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        p.stdout!.on('data', (d: string) => {
          out += d;
          if (out.includes('ready')) resolve();
        });
        p.once('exit', (c) => reject(new Error(`server in ${ns} exited (${c}) before it was ready`)));
      });
      return p;
    },
    exec(args) {
      return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' });
    },
    close() {
      for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
      for (const r of routes) {
        try {
          ip('route', 'del', r);
        } catch {}
      }
      try {
        ip('link', 'del', hostVeth);
      } catch {}
      ip('netns', 'del', ns);
    },
  };
}

export async function exited(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  await once(p, 'exit');
}
