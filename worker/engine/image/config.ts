/**
 * An image's config (the OCI image config's `config` object) checked and turned into a
 * container process's defaults: Entrypoint + Cmd, Env, WorkingDir, User, StopSignal.
 * Every value comes from the image, so every value is untrusted:
 *
 * - User names are looked up in the image's OWN /etc/passwd and /etc/group, read inside its
 *   rootfs through a RootReader that resolves with the kernel confining paths (rootfs.ts),
 *   never the host's files. Numeric ids past 2^31-1 are refused: containerd read them into
 *   an int32 and "4294967296" became root (CVE-2024-40635).
 * - WorkingDir is resolved inside the rootfs (symlinks followed only within it) and refused
 *   when it lands under /proc or /sys: runc's CVE-2024-21626 let a cwd of /proc/self/fd/N
 *   reach a host directory through a leaked fd.
 */
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { ImageInvalidError } from '../../../common/errors.js';

/** The fields of an OCI image config's `config` that faasbox honours. */
export interface ImageRunConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  StopSignal?: string;
}

/** Reads the image's own files; paths are inside its rootfs and resolved there. */
export interface RootReader {
  /** The file's bytes, or undefined when it is missing (or not a regular file). */
  readFile(p: string): Buffer | undefined;
  /**
   * The path with every symlink resolved inside the rootfs (dangling ones too: the
   * container's /proc exists at run time), the part that does not exist kept as written;
   * undefined for a symlink loop.
   */
  realpath(p: string): string | undefined;
}

export interface ImageProcess {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  groups: number[];
  stopSignal: NodeJS.Signals;
}

/** What the caller gives over the image's defaults (ctr run's CMD, --user, --env, --cwd). */
export interface ProcessOverrides {
  cmd?: string[];
  user?: string;
  env?: string[];
  cwd?: string;
}

/** As containerd since CVE-2024-40635: an id must fit a signed 32-bit integer. */
export const MAX_ID = 0x7fff_ffff;
const MAX_ACCOUNT_FILE = 4 * 1024 * 1024;
const FORBIDDEN_CWD = ['/proc', '/sys'];

const invalid = (field: string, problem: string) => new ImageInvalidError(`image config: ${field} ${problem}`, { field });

function strings(field: string, v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw invalid(field, 'must be an array of strings');
  for (const s of v as string[]) if (s.includes('\0')) throw invalid(field, 'contains a NUL byte');
  return v as string[];
}

function text(field: string, v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalid(field, 'must be a string');
  if (v.includes('\0')) throw invalid(field, 'contains a NUL byte');
  return v;
}

/** The `config` object of an image config blob, its fields type-checked. */
export function parseRunConfig(imageConfig: unknown): ImageRunConfig {
  const c = (imageConfig as { config?: unknown } | null)?.config;
  if (c === undefined || c === null) return {};
  if (typeof c !== 'object' || Array.isArray(c)) throw invalid('config', 'must be an object');
  const o = c as Record<string, unknown>;
  const out: ImageRunConfig = {};
  const user = text('User', o.User);
  const env = strings('Env', o.Env);
  const entrypoint = strings('Entrypoint', o.Entrypoint);
  const cmd = strings('Cmd', o.Cmd);
  const wd = text('WorkingDir', o.WorkingDir);
  const stop = text('StopSignal', o.StopSignal);
  if (user !== undefined) out.User = user;
  if (env) out.Env = env;
  if (entrypoint) out.Entrypoint = entrypoint;
  if (cmd) out.Cmd = cmd;
  if (wd !== undefined) out.WorkingDir = wd;
  if (stop !== undefined) out.StopSignal = stop;
  return out;
}

/** A numeric id as a user or group field spells it, bounded; undefined when it is a name. */
export function numericId(field: string, s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > MAX_ID) throw invalid(field, `id ${s.length > 20 ? `${s.slice(0, 20)}...` : s} is past ${MAX_ID} (CVE-2024-40635)`);
  return n;
}

interface Account {
  name: string;
  id: number;
  gid?: number;
  members?: string[];
}

/** /etc/passwd or /etc/group lines; malformed lines are skipped, as getpwnam does. */
function accounts(file: Buffer | undefined, kind: 'passwd' | 'group'): Account[] {
  if (!file) return [];
  if (file.length > MAX_ACCOUNT_FILE) throw invalid('User', `cannot be resolved: the image's /etc/${kind} is larger than ${MAX_ACCOUNT_FILE} bytes`);
  const out: Account[] = [];
  for (const line of file.toString('utf8').split('\n')) {
    const f = line.split(':');
    if (f.length < (kind === 'passwd' ? 7 : 4) || !f[0] || line.startsWith('#')) continue;
    const id = /^[0-9]+$/.test(f[2]!) ? Number(f[2]) : NaN;
    if (!Number.isSafeInteger(id) || id > MAX_ID) continue;
    if (kind === 'passwd') {
      const gid = /^[0-9]+$/.test(f[3]!) ? Number(f[3]) : NaN;
      if (!Number.isSafeInteger(gid) || gid > MAX_ID) continue;
      out.push({ name: f[0], id, gid });
    } else {
      out.push({ name: f[0], id, members: f[3]!.split(',').filter(Boolean) });
    }
  }
  return out;
}

/** "user[:group]", each a name or a number, resolved in the image's own account files. */
export function resolveUser(spec: string, root: RootReader): { uid: number; gid: number; groups: number[] } {
  const [user, group, ...rest] = spec.split(':');
  if (rest.length || !user) throw invalid('User', `${JSON.stringify(spec)} is not "user[:group]"`);
  let passwd: Account[] | undefined;
  const users = () => (passwd ??= accounts(root.readFile('/etc/passwd'), 'passwd'));
  let uid = numericId('User', user);
  let entry: Account | undefined;
  if (uid === undefined) {
    entry = users().find((a) => a.name === user);
    if (!entry) throw invalid('User', `names ${JSON.stringify(user)}, who is not in the image's /etc/passwd`);
    uid = entry.id;
  } else {
    entry = users().find((a) => a.id === uid);
  }
  const groupsFile = accounts(root.readFile('/etc/group'), 'group');
  let gid: number;
  if (group === undefined || group === '') {
    gid = entry?.gid ?? 0; // as Docker: a uid with no passwd entry runs with gid 0
  } else {
    const n = numericId('User', group);
    if (n !== undefined) gid = n;
    else {
      const g = groupsFile.find((a) => a.name === group);
      if (!g) throw invalid('User', `names the group ${JSON.stringify(group)}, which is not in the image's /etc/group`);
      gid = g.id;
    }
  }
  // Supplementary groups: the ones that list the user, only when it has a name and no group was forced.
  const groups = entry && (group === undefined || group === '') ? groupsFile.filter((g) => g.members!.includes(entry!.name) && g.id !== gid).map((g) => g.id) : [];
  return { uid, gid, groups: [...new Set(groups)] };
}

/** The working directory, resolved inside the rootfs; never under /proc or /sys. */
export function checkWorkingDir(wd: string, root: RootReader): string {
  const lexical = path.posix.resolve('/', wd);
  const under = (p: string) => FORBIDDEN_CWD.find((f) => p === f || p.startsWith(`${f}/`));
  let bad = under(lexical);
  const real = bad ? undefined : root.realpath(lexical);
  if (!bad && real === undefined) throw invalid('WorkingDir', `${JSON.stringify(wd)} does not resolve (a symlink loop)`);
  if (!bad && real !== undefined) bad = under(real);
  if (bad) throw invalid('WorkingDir', `${JSON.stringify(wd)} is under ${bad}: a container's working directory may not be in a kernel filesystem (CVE-2024-21626)`);
  return real ?? lexical;
}

export function checkStopSignal(s: string | undefined): NodeJS.Signals {
  if (s === undefined) return 'SIGTERM';
  const signals = osConstants.signals as Record<string, number>;
  const byNumber = /^[0-9]+$/.test(s) ? Object.keys(signals).find((k) => signals[k] === Number(s)) : undefined;
  const name = byNumber ?? (s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`);
  if (!(name in signals)) throw invalid('StopSignal', `${JSON.stringify(s)} is not a signal`);
  return name as NodeJS.Signals;
}

function envKey(e: string): string {
  const eq = e.indexOf('=');
  return eq < 0 ? e : e.slice(0, eq);
}

function checkEnv(env: string[], field: string): void {
  for (const e of env) if (envKey(e) === '' || !e.includes('=')) throw invalid(field, `entry ${JSON.stringify(e.slice(0, 80))} is not KEY=VALUE`);
}

/**
 * The container's process from the image's config and the caller's overrides: CMD given
 * replaces Cmd (the Entrypoint stays, as docker run does), --env entries replace the
 * image's of the same key, --user and --cwd replace User and WorkingDir (and are checked
 * the same way). An image with no User runs as faasbox's default user, not root.
 */
export function imageProcess(cfg: ImageRunConfig, root: RootReader, over: ProcessOverrides = {}, defaults = { uid: 65534, gid: 65534 }): ImageProcess {
  const args = [...(cfg.Entrypoint ?? []), ...(over.cmd && over.cmd.length ? over.cmd : (cfg.Cmd ?? []))];
  if (args.length === 0) throw invalid('Entrypoint and Cmd', 'are both empty: give a command');
  const imageEnv = cfg.Env ?? [];
  checkEnv(imageEnv, 'Env');
  checkEnv(over.env ?? [], '--env');
  const overridden = new Set((over.env ?? []).map(envKey));
  const env = [...imageEnv.filter((e) => !overridden.has(envKey(e))), ...(over.env ?? [])];
  const userSpec = over.user ?? cfg.User;
  const ids = userSpec === undefined ? { ...defaults, groups: [] } : resolveUser(userSpec, root);
  const cwd = checkWorkingDir(over.cwd ?? cfg.WorkingDir ?? '/', root);
  return { args, env, cwd, ...ids, stopSignal: checkStopSignal(cfg.StopSignal) };
}
