/**
 * `faasbox image pull` (cli/image-pull.ts) as a script sees it: --help, the exit codes
 * (0 pulled, 2 usage, 3 not found, 4 unauthorized, 5 digest mismatch, 1 unavailable), one
 * JSON object with --json, the digest alone otherwise, credentials from a file or stdin,
 * and no secret in any output.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../cli/redis.js';
import { readTags } from '../../worker/engine/image/refs.js';
import { TestStore } from '../support/image-store.js';
import { runPull } from '../support/pull-cli.js';
import { startRegistryProxy, type RegistryProxy } from '../support/registry-proxy.js';
import { OciLayout, registrySkip, skopeoPush, startRegistry, type TestRegistry } from '../support/registry.js';

const skip = registrySkip();
const SECRET = 'cli-s3cret-never-printed';

describe('faasbox image pull', { skip }, () => {
  let reg: TestRegistry;
  let proxy: RegistryProxy;
  let store: TestStore;
  let oci: OciLayout;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    store = new TestStore('faasbox-cli-pull-');
    oci = new OciLayout(path.join(store.root, 'oci'));
    const files = path.join(store.root, 'files');
    mkdirSync(files);
    writeFileSync(path.join(files, 'a'), 'a\n'.repeat(5000));
    oci.umoci('new', '--image', oci.image('v1'));
    oci.umoci('insert', '--image', oci.image('v1'), path.join(files, 'a'), '/a');
    reg = await startRegistry();
    await skopeoPush(oci.image('v1'), `${reg.host}/cli/img:v1`);
    proxy = await startRegistryProxy(reg.port);
    // HOME too: no ~/.docker/config.json of the machine's is read.
    env = { FAASBOX_STATE_DIR: store.stateDir, HOME: store.root, DOCKER_CONFIG: path.join(store.root, 'docker') };
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    store?.remove();
  });

  test('--help: usage and the exit codes, exit 0, nothing pulled', async () => {
    const r = await runPull(['--help'], env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: faasbox image pull REF/);
    assert.match(r.stdout, /Exit codes: 0 ok, 2 usage .*4 the registry refused the credentials, 5 digest mismatch/s);
  });

  test('usage errors exit 2: no reference, a reference with no host, a bad --platform, an unknown option, bad --creds', async () => {
    for (const args of [[], ['alpine'], [`${reg.host}/cli/img:v1`, '--platform', 'linux'], ['--bogus', `${reg.host}/cli/img:v1`], [`${reg.host}/cli/img:v1`, '--creds', 'nocolon']]) {
      const r = await runPull(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /faasbox image pull: /);
    }
  });

  test('pulled: the digest on stdout; --json: one object', async () => {
    const want = oci.manifest('v1').digest;
    const human = await runPull([`${reg.host}/cli/img:v1`], env);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout, `${want}\n`);
    assert.equal(human.stderr, '', 'no progress when stdout is not a terminal');
    const json = await runPull(['--json', `${reg.host}/cli/img:v1`], env);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.deepEqual({ ref: out.ref, digest: out.digest, layers: out.layers, transferredBytes: out.transferredBytes }, { ref: `${reg.host}/cli/img:v1`, digest: want, layers: 1, transferredBytes: 0 });
    assert.equal(readTags(store.imagesDir)[`${reg.host}/cli/img:v1`], want);
  });

  test('not found exits 3; unavailable exits 1; --json errors are one object on stderr', async () => {
    const nf = await runPull(['--json', `${reg.host}/cli/img:nope`], env);
    assert.equal(nf.code, 3, nf.stderr);
    assert.equal((JSON.parse(nf.stderr) as { error: { code: string } }).error.code, 'IMAGE_NOT_FOUND');
    const port = await freePort();
    const down = await runPull([`127.0.0.1:${port}/cli/img:v1`], env);
    assert.equal(down.code, 1, down.stderr);
    assert.match(down.stderr, /REGISTRY_UNAVAILABLE/);
  });

  test('unauthorized exits 4, the password never printed; --creds-file and --creds - work', async () => {
    proxy.faults.basic = { user: 'erin', password: SECRET };
    try {
      const ref = `${proxy.host}/cli/img:v1`;
      const none = await runPull([ref], env);
      assert.equal(none.code, 4, none.stderr);
      const wrong = await runPull([ref, '--creds', `erin:${SECRET}-wrong`], env);
      assert.equal(wrong.code, 4, wrong.stderr);
      assert.ok(!wrong.stderr.includes(SECRET) && !wrong.stdout.includes(SECRET), wrong.stderr);
      const file = path.join(store.root, 'creds');
      writeFileSync(file, `erin:${SECRET}\n`, { mode: 0o600 });
      const fromFile = await runPull([ref, '--creds-file', file, '--json'], env);
      assert.equal(fromFile.code, 0, fromFile.stderr);
      assert.ok(!fromFile.stdout.includes(SECRET));
      const fromStdin = await runPull([ref, '--creds', '-'], env, `erin:${SECRET}\n`);
      assert.equal(fromStdin.code, 0, fromStdin.stderr);
    } finally {
      delete proxy.faults.basic;
    }
  });

  test('a digest mismatch exits 5', async () => {
    const layer = oci.manifest('v1').manifest.layers[0]!;
    proxy.faults.corrupt = { digest: layer.digest, size: layer.size };
    try {
      const fresh = new TestStore('faasbox-cli-pull-bad-');
      try {
        const r = await runPull([`${proxy.host}/cli/img:v1`], { ...env, FAASBOX_STATE_DIR: fresh.stateDir });
        assert.equal(r.code, 5, r.stderr);
        assert.match(r.stderr, /DIGEST_MISMATCH/);
      } finally {
        fresh.remove();
      }
    } finally {
      delete proxy.faults.corrupt;
    }
  });
});
