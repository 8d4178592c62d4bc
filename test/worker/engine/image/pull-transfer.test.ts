/**
 * The puller's transfers through a fault proxy in front of a real registry: a blob cut off
 * halfway resumes with Range; a server that ignores Range is read again from the start;
 * 503s are retried; two pulls at once (in one process, and in two processes) fetch each
 * blob once; a pull SIGKILLed mid-blob leaves nothing under a final name, and the next
 * pull resumes the killed one's partial blob and verifies it.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { killPid } from '../../../support/engine.js';
import { eventually } from '../../../support/eventually.js';
import { TestStore } from '../../../support/image-store.js';
import { runPull, spawnPull } from '../../../support/pull-cli.js';
import { buildTestImages } from '../../../support/registry-images.js';
import { startRegistryProxy, type RegistryProxy } from '../../../support/registry-proxy.js';
import { registrySkip, skopeoPush, startRegistry, type OciLayout, type TestRegistry } from '../../../support/registry.js';
import { blobPath, recordPath } from '../../../../worker/engine/image/paths.js';
import { pullImage } from '../../../../worker/engine/image/pull.js';
import { readTags } from '../../../../worker/engine/image/refs.js';
import { buildImage } from '../../../../images/build.js';

const skip = registrySkip();

describe('pull transfers through a fault proxy', { skip }, () => {
  let reg: TestRegistry;
  let proxy: RegistryProxy;
  let oci: OciLayout;
  let work: TestStore;
  const stores: TestStore[] = [];
  const newStore = () => {
    const s = new TestStore('faasbox-pull-xfer-');
    stores.push(s);
    return s;
  };
  let big: { digest: string; size: number };
  let all: number;
  let ref: string;

  before(async () => {
    work = new TestStore('faasbox-pull-xfer-work-');
    oci = buildTestImages(path.join(work.root, 'oci'), (await buildImage('busybox', path.join(work.root, 'built'))).dir);
    reg = await startRegistry();
    await skopeoPush(oci.image('big'), `${reg.host}/xfer/big:v1`);
    const m = oci.manifest('big').manifest;
    big = m.layers.reduce((a, b) => (b.size > a.size ? b : a));
    all = m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
    proxy = await startRegistryProxy(reg.port);
    ref = `${proxy.host}/xfer/big:v1`;
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    for (const s of stores) s.remove();
    work?.remove();
  });
  const reset = () => {
    proxy.seen.length = 0;
    for (const k of Object.keys(proxy.faults)) delete (proxy.faults as Record<string, unknown>)[k];
  };

  test('a blob cut off halfway is resumed with Range, not fetched again', async () => {
    reset();
    proxy.faults.cut = { digest: big.digest, afterBytes: Math.floor(big.size / 2), times: 1 };
    const r = await pullImage(newStore().imagesDir, ref);
    const gets = proxy.blobGets(big.digest);
    assert.equal(gets.length, 2, JSON.stringify(gets));
    assert.equal(gets[0]!.range, undefined);
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    assert.ok(from > 0 && from <= big.size / 2, `resumed from ${gets[1]!.range}`);
    assert.equal(r.transferredBytes, all, 'every byte came once');
  });

  test('a server answering 200 to a Range: the blob is read again from its start and verified', async () => {
    reset();
    proxy.faults.cut = { digest: big.digest, afterBytes: Math.floor(big.size / 2), times: 1 };
    proxy.faults.ignoreRange = true;
    const r = await pullImage(newStore().imagesDir, ref);
    assert.equal(proxy.blobGets(big.digest).length, 2);
    assert.ok(r.transferredBytes > all, 'the first half came twice');
  });

  test('a transfer that stalls times out and resumes with Range', async () => {
    reset();
    const third = Math.floor(big.size / 3);
    proxy.faults.stall = { digest: big.digest, afterBytes: third, times: 1 };
    const r = await pullImage(newStore().imagesDir, ref, { timeoutMs: 1000 });
    const gets = proxy.blobGets(big.digest);
    assert.equal(gets.length, 2);
    assert.match(gets[1]!.range ?? '', /^bytes=\d+-$/);
    assert.equal(r.transferredBytes, all);
  });

  test('a pull aborted mid-blob stops at once, releases its lock and keeps its partial for later', async () => {
    reset();
    proxy.faults.stall = { digest: big.digest, afterBytes: 100_000 };
    const s = newStore();
    const part = path.join(s.imagesDir, 'tmp', `blob-${big.digest.slice(7)}.part`);
    const ac = new AbortController();
    const p = pullImage(s.imagesDir, ref, { signal: ac.signal });
    await eventually(() => (statSync(part, { throwIfNoEntry: false })?.size ?? 0) >= 100_000, 30_000, 'half a blob');
    ac.abort();
    await assert.rejects(p, (err: Error) => err.name === 'AbortError');
    assert.equal(existsSync(part.replace(/\.part$/, '.lock')), false, 'lock released');
    assert.equal(existsSync(blobPath(s.imagesDir, big.digest)), false);
    delete proxy.faults.stall;
    const r = await pullImage(s.imagesDir, ref);
    assert.equal(proxy.blobGets(big.digest).at(-1)!.range, 'bytes=100000-', 'resumed where the aborted pull stopped');
    assert.ok(r.transferredBytes < all);
  });

  test('503s are retried with backoff', async () => {
    reset();
    proxy.faults.unavailable = { count: 2 };
    const r = await pullImage(newStore().imagesDir, ref);
    assert.equal(proxy.faults.unavailable.count, 0);
    assert.equal(r.transferredBytes, all);
  });

  test('a registry that keeps failing: REGISTRY_UNAVAILABLE after the retries', async () => {
    reset();
    proxy.faults.unavailable = { count: 100 };
    await assert.rejects(pullImage(newStore().imagesDir, ref, { retries: 1 }), (err: Error & { code?: string }) => err.code === 'REGISTRY_UNAVAILABLE' && /503/.test(err.message));
  });

  test('a blob corrupted on the wire: DIGEST_MISMATCH, nothing of it kept', async () => {
    reset();
    proxy.faults.corrupt = big;
    const s = newStore();
    await assert.rejects(pullImage(s.imagesDir, ref), (err: Error & { code?: string }) => err.code === 'DIGEST_MISMATCH' && err.message.includes(big.digest));
    assert.equal(existsSync(blobPath(s.imagesDir, big.digest)), false);
    assert.deepEqual(readdirSync(path.join(s.imagesDir, 'tmp')).filter((n) => !n.endsWith('.lock')), []);
  });

  test('two pulls at once in one process: each blob fetched once', async () => {
    reset();
    proxy.faults.blobDelayMs = 200;
    const s = newStore();
    const [a, b] = await Promise.all([pullImage(s.imagesDir, ref), pullImage(s.imagesDir, ref)]);
    assert.equal(a.manifestDigest, b.manifestDigest);
    for (const l of a.record.layers) assert.equal(proxy.blobGets(l.digest).length, 1, l.digest);
    assert.equal(a.transferredBytes + b.transferredBytes, all);
  });

  test('two pull processes at once: each blob fetched once', async () => {
    reset();
    proxy.faults.blobDelayMs = 300;
    const s = newStore();
    const env = { FAASBOX_STATE_DIR: s.stateDir };
    const [a, b] = await Promise.all([runPull(['--json', ref], env), runPull(['--json', ref], env)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const ja = JSON.parse(a.stdout) as { digest: string; transferredBytes: number };
    const jb = JSON.parse(b.stdout) as { digest: string; transferredBytes: number };
    assert.equal(ja.digest, jb.digest);
    for (const l of oci.manifest('big').manifest.layers) assert.equal(proxy.blobGets(l.digest).length, 1, l.digest);
    assert.equal(ja.transferredBytes + jb.transferredBytes, all);
  });

  test('a pull SIGKILLed mid-blob: nothing unverified under a final name; the next pull resumes and verifies', async () => {
    reset();
    const half = Math.floor(big.size / 2);
    proxy.faults.stall = { digest: big.digest, afterBytes: half };
    const s = newStore();
    const part = path.join(s.imagesDir, 'tmp', `blob-${big.digest.slice(7)}.part`);
    const child = spawnPull(['--json', ref], { FAASBOX_STATE_DIR: s.stateDir });
    let exited = false;
    child.once('exit', () => (exited = true));
    try {
      await eventually(() => (statSync(part, { throwIfNoEntry: false })?.size ?? 0) >= half || exited, 60_000, 'the child to write half the blob');
      assert.equal(exited, false, 'the child is mid-pull');
    } finally {
      if (!exited) killPid(child.pid!);
      await eventually(() => exited, 10_000, 'the child to die');
    }
    // What a reader trusts is untouched: no blob under its name, no record, no tag.
    assert.equal(existsSync(blobPath(s.imagesDir, big.digest)), false);
    assert.deepEqual(readdirSync(path.join(s.imagesDir, 'images', 'sha256')), []);
    assert.deepEqual(readTags(s.imagesDir), {});
    assert.ok(existsSync(part), 'the partial blob stays in tmp/ for a resume');

    delete proxy.faults.stall;
    proxy.seen.length = 0;
    const r = await pullImage(s.imagesDir, ref);
    assert.ok(existsSync(recordPath(s.imagesDir, r.manifestDigest)));
    const gets = proxy.blobGets(big.digest);
    assert.equal(gets.length, 1);
    assert.equal(gets[0]!.range, `bytes=${half}-`, 'resumed from what the killed pull had written');
    assert.equal(existsSync(part), false);
    assert.deepEqual(readdirSync(path.join(s.imagesDir, 'tmp')).filter((n) => n.startsWith('blob-')), [], 'the dead pull\'s lock and partial are gone');
  });
});
