/**
 * Image pull + unpack, side by side in one run: faasbox's nodejs20 runtime image (~100 MB,
 * written from the image store as an OCI layout, gzip) pushed with skopeo to a local
 * docker-registry, then pulled interleaved by
 *
 *   faasbox        `faasbox image pull` (the CLI, its own process) into a fresh state dir
 *   skopeo+umoci   `skopeo copy docker://... oci:DIR:1` then `umoci unpack --image DIR:1`
 *   podman         `podman pull` into a private storage root (overlay, cgroupfs manager)
 *
 * each timed as the processes they are, from a fresh directory every round. Then: an
 * incremental pull of a second image sharing all but its top layer (bytes the registry
 * sent, through a counting proxy), and the peak RSS of `faasbox image pull` for an image
 * with a 1 GB layer (compressible; /usr/bin/time's maximum resident set size).
 *
 * Needs the image puller (worker/engine/image/pull.ts, cli/image-pull.ts); a build without
 * it fails at once, unless --peers-only (the peers alone, to check the setup).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildImage } from '../images/build.js';
import { importRuntimeImage } from '../worker/engine/image/import.js';
import { imagesDirOf } from '../worker/engine/image/paths.js';
import { mountsUnder } from '../worker/engine/mounts.js';
import { linuxSys, MNT_DETACH } from '../worker/engine/sys/index.js';
import { compressibleFile, countingProxy, sh, startRegistry, writeOciLayout } from './image-setup.js';
import { interleave, median, round, type Contender } from './stats.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(repo, 'bin/faasbox.js');
const IMAGE = 'faasbox/nodejs20';

function pullerMissing(): string | undefined {
  const need = ['dist/worker/engine/image/pull.js', 'dist/cli/image-pull.js'].filter((f) => !existsSync(path.join(repo, f)));
  return need.length ? `bench image needs the image puller (${need.join(', ')} missing: worker/engine/image/pull.ts and cli/image-pull.ts are not in this build); --peers-only measures the peers alone` : undefined;
}

const have = (cmd: string) => ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(path.join(d, cmd)));

/** `faasbox image pull REF --json` with state dir; resolves to its JSON answer. */
function faasboxPull(ref: string, stateDir: string, timed = false): Promise<{ out: string; maxRssKb?: number }> {
  const args = [bin, 'image', 'pull', ref, '--json'];
  const [cmd, argv] = timed ? ['/usr/bin/time', ['-v', process.execPath, ...args]] : [process.execPath, args];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd as string, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FAASBOX_STATE_DIR: stateDir } });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`faasbox image pull ${ref} exited ${code}: ${err.trim().slice(-600)}`));
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      resolve({ out, ...(rss ? { maxRssKb: Number(rss[1]) } : {}) });
    });
  });
}

/** Unmounts what a peer left mounted under dir (podman's overlay home), then removes dir. */
async function removeDir(dir: string): Promise<void> {
  const sys = await linuxSys();
  for (const m of mountsUnder(dir)) sys.umount(m, MNT_DETACH);
  rmSync(dir, { recursive: true, force: true });
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { iterations: { type: 'string', default: '5' }, 'peers-only': { type: 'boolean', default: false }, 'big-mb': { type: 'string', default: '1024' } } });
  const iterations = Number(values.iterations);
  const peersOnly = values['peers-only'];
  const missing = pullerMissing();
  if (missing && !peersOnly) throw new Error(missing);
  for (const tool of ['docker-registry', 'skopeo', 'umoci']) if (!have(tool)) throw new Error(`bench image needs ${tool} (scripts/setup.sh installs it)`);
  const podman = have('podman');
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-bench-image-'));
  const log = (s: string) => process.stderr.write(`bench image: ${s}\n`);
  const stops: (() => Promise<void>)[] = [];
  try {
    log('building nodejs20 and writing it into a store, then as an OCI layout...');
    const srcState = path.join(work, 'src-state');
    const imported = await importRuntimeImage(imagesDirOf(srcState), await buildImage('nodejs20', path.join(work, 'built')));
    const layout = path.join(work, 'layout');
    await writeOciLayout(imagesDirOf(srcState), imported.record, layout, '1');
    const registry = await startRegistry(path.join(work, 'registry'));
    stops.push(registry.stop);
    const push = (tag: string) => sh('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${registry.host}/${IMAGE}:${tag}`]);
    await push('1');
    const ref = `${registry.host}/${IMAGE}:1`;

    // podman with a configuration of its own: nothing of /etc/containers' storage or engine settings.
    const podmanConf = path.join(work, 'containers.conf');
    writeFileSync(podmanConf, `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "${path.join(work, 'podman-events.log')}"\n`);
    const podmanEnv = { ...process.env, CONTAINERS_CONF: podmanConf };

    let round_ = 0;
    const fresh = (what: string) => {
      const d = path.join(work, `${what}-${round_++}`);
      mkdirSync(d);
      return d;
    };
    const contenders: Record<string, Contender> = {};
    if (!peersOnly) {
      contenders.faasbox = async () => {
        const d = fresh('faasbox');
        await faasboxPull(ref, d);
        return () => removeDir(d);
      };
    }
    contenders['skopeo+umoci'] = async () => {
      const d = fresh('skopeo');
      await sh('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${path.join(d, 'oci')}:1`]);
      await sh('umoci', ['unpack', '--image', `${path.join(d, 'oci')}:1`, path.join(d, 'bundle')]);
      return () => removeDir(d);
    };
    if (podman) {
      contenders.podman = async () => {
        const d = fresh('podman');
        await sh('podman', ['--root', path.join(d, 'root'), '--runroot', path.join(d, 'run'), '--storage-driver', 'overlay', 'pull', '--quiet', '--tls-verify=false', `docker://${ref}`], podmanEnv);
        return () => removeDir(d);
      };
    } else {
      log('podman is not installed (apt-get install podman): its column stays empty');
    }
    log(`${iterations} interleaved rounds (+1 warm-up) of ${Object.keys(contenders).join(', ')}...`);
    const samples = await interleave(contenders, iterations, 1);
    const med = (k: string) => (samples[k] ? round(median(samples[k]!), 1) : null);

    let incremental: number | null = null;
    let peakRssMb: number | null = null;
    if (!peersOnly) {
      log('incremental: a second image with one more layer on top, pulled after the first...');
      const top = path.join(work, 'top-file');
      writeFileSync(top, 'the top layer of image 2\n'.repeat(4096));
      await sh('umoci', ['insert', '--image', `${layout}:1`, '--tag', '2', top, '/faasbox-bench/top']);
      await push('2');
      const proxy = await countingProxy(registry.port);
      stops.push(proxy.stop);
      const d = fresh('incremental');
      await faasboxPull(`${proxy.host}/${IMAGE}:1`, d);
      proxy.reset();
      await faasboxPull(`${proxy.host}/${IMAGE}:2`, d);
      incremental = proxy.bytes();
      await removeDir(d);

      const bigMb = Number(values['big-mb']);
      log(`peak RSS: an image with a ${bigMb} MB layer (compressible), pulled under /usr/bin/time...`);
      const big = path.join(work, 'big-file');
      await compressibleFile(big, bigMb * 1024 * 1024);
      await sh('umoci', ['insert', '--image', `${layout}:1`, '--tag', 'big', big, '/faasbox-bench/big']);
      rmSync(big);
      await push('big');
      const b = fresh('big');
      const r = await faasboxPull(`${registry.host}/${IMAGE}:big`, b, true);
      peakRssMb = r.maxRssKb !== undefined ? round(r.maxRssKb / 1024, 1) : null;
      await removeDir(b);
    }

    const fastestPeer = Math.min(...['skopeo+umoci', 'podman'].flatMap((k) => (med(k) !== null ? [med(k)!] : [])));
    console.log('\npull + unpack of nodejs20 from a local registry (median ms, interleaved)');
    for (const k of Object.keys(contenders)) console.log(`  ${k.padEnd(14)} ${String(med(k)).padStart(9)} ms   (n=${samples[k]!.length})`);
    if (med('faasbox') !== null) console.log(`  faasbox / fastest peer: ${round(med('faasbox')! / fastestPeer, 2)}x (target <= 0.7x)`);
    if (incremental !== null) console.log(`  incremental pull of image 2 (one new layer): ${incremental} bytes from the registry`);
    if (peakRssMb !== null) console.log(`  peak RSS of faasbox image pull, ${values['big-mb']} MB layer: ${peakRssMb} MB (target < 100 MB)`);
    if (missing) console.log(`  (${missing})`);
    console.log(JSON.stringify({ bench: 'image', faasbox_ms: med('faasbox'), skopeo_umoci_ms: med('skopeo+umoci'), podman_ms: med('podman'), incremental_bytes: incremental, peak_rss_mb: peakRssMb }));
  } finally {
    for (const s of stops.reverse()) await s().catch(() => {});
    await removeDir(work);
  }
}
