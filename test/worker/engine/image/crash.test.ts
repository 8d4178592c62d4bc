/**
 * A process killed in the middle of unpacking a layer leaves nothing under a final name:
 * its half-written directory sits under tmp/, and a later unpack of the same layer does the
 * whole work again and succeeds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { createWriteStream, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { createGzip } from 'node:zlib';
import { unpackImage } from '../../../../worker/engine/image/layers.js';
import { tarHeader } from '../../../support/archives.js';
import { killPid } from '../../../support/engine.js';
import { MEDIA, TestStore } from '../../../support/image-store.js';

const store = new TestStore('faasbox-unpack-crash-');
after(() => store.remove());
const layersModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../worker/engine/image/layers.js');

test('SIGKILL mid-unpack: nothing visible under layers/, and the next unpack completes', async () => {
  // 256 MiB of one file (incompressible enough to take a while to write), then a marker file.
  const blob = path.join(store.root, 'big.tar.gz');
  const h = createHash('sha256');
  const gz = createGzip({ level: 1 });
  const out = gz.pipe(createWriteStream(blob));
  const put = async (b: Buffer) => {
    h.update(b);
    if (!gz.write(b)) await once(gz, 'drain');
  };
  const SIZE = 256 * 1024 * 1024;
  await put(tarHeader({ name: 'big', size: SIZE }));
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < SIZE / chunk.length; i++) {
    chunk.writeUInt32LE(i, 0);
    await put(chunk);
  }
  await put(tarHeader({ name: 'marker', size: 2 }));
  await put(Buffer.concat([Buffer.from('ok'), Buffer.alloc(510), Buffer.alloc(1024)]));
  gz.end();
  await once(out, 'finish');
  const bytes = readFileSync(blob);
  const record = store.record([{ descriptor: { digest: store.blob(bytes), mediaType: MEDIA.gzip, size: bytes.length }, diffId: `sha256:${h.digest('hex')}` }]);

  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { unpackImage } from ${JSON.stringify(layersModule)}; await unpackImage(${JSON.stringify(store.imagesDir)}, ${JSON.stringify(record)}); console.log('finished');`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let said = '';
  child.stdout!.on('data', (d) => (said += d));
  try {
    // Killed once its temporary layer holds some of the big file.
    const tmp = path.join(store.imagesDir, 'tmp');
    const deadline = Date.now() + 120_000;
    for (;;) {
      const dirs = (() => {
        try {
          return readdirSync(tmp).filter((d) => d.startsWith('layer-'));
        } catch {
          return [];
        }
      })();
      const size = dirs.length ? (statSync(path.join(tmp, dirs[0]!, 'big'), { throwIfNoEntry: false })?.size ?? 0) : 0;
      if (size > 16 * 1024 * 1024) break;
      assert.ok(Date.now() < deadline && child.exitCode === null, `the child unpacks (${said})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    killPid(child.pid!);
    await once(child, 'exit');
  } finally {
    if (child.exitCode === null && child.signalCode === null) killPid(child.pid!);
  }
  assert.equal(said, '', 'killed before it finished');
  assert.deepEqual(store.leftovers().layers, [], 'nothing under a final name');
  assert.equal(store.leftovers().tmp.length, 1, 'the half-written layer sits under tmp/ only');

  const [dir] = await unpackImage(store.imagesDir, record);
  assert.equal(statSync(path.join(dir!, 'big')).size, SIZE);
  assert.equal(readFileSync(path.join(dir!, 'marker'), 'utf8'), 'ok');
});
