import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Rec, FD_CONFIG, FD_SYNC, FD_EXTRA_BASE, EXIT_BAIL, ZYGOTE_FD_CONTROL, ZYGOTE_FDS_FIXED, ZYGOTE_MAX_EXTRA_FDS, ZYGOTE_MAX_CONFIG, SEED_FDS_FIXED, ConfigWriter, parseSyncLine, decodeWaitStatus } from './protocol.js';

const srcDir = path.dirname(fileURLToPath(import.meta.url)).replace(`${path.sep}dist${path.sep}`, path.sep);
const header = readFileSync(path.join(srcDir, 'protocol.h'), 'utf8');
const defines = new Map<string, number>();
for (const m of header.matchAll(/^#define (\w+) (\d+)/gm)) defines.set(m[1]!, Number(m[2]));

test('record types in protocol.ts equal those in protocol.h', () => {
  const cRecs = [...defines].filter(([k]) => k.startsWith('REC_'));
  assert.equal(cRecs.length, Object.keys(Rec).length, 'same number of record types');
  for (const [name, value] of cRecs) {
    assert.equal((Rec as Record<string, number>)[name.slice(4)], value, name);
  }
});

test('fd numbers and exit code equal those in protocol.h', () => {
  assert.equal(defines.get('FD_CONFIG'), FD_CONFIG);
  assert.equal(defines.get('FD_SYNC'), FD_SYNC);
  assert.equal(defines.get('FD_EXTRA_BASE'), FD_EXTRA_BASE);
  assert.equal(defines.get('EXIT_BAIL'), EXIT_BAIL);
});

test('zygote constants equal those in protocol.h', () => {
  const cZygote = [...defines].filter(([k]) => k.startsWith('ZYGOTE_'));
  const ts: Record<string, number> = { ZYGOTE_FD_CONTROL, ZYGOTE_FDS_FIXED, ZYGOTE_MAX_EXTRA_FDS, ZYGOTE_MAX_CONFIG };
  assert.deepEqual(Object.fromEntries(cZygote), ts);
  // The sync fd and the extra fds land where a spawned monitor finds them.
  assert.equal(FD_EXTRA_BASE, FD_SYNC + 1);
  assert.equal(ZYGOTE_FDS_FIXED, 4);
});

test('seed constants equal those in protocol.h', () => {
  assert.equal(defines.get('SEED_FDS_FIXED'), SEED_FDS_FIXED);
  assert.equal(parseSyncLine('seeded').kind, 'seeded');
});

test('config records are type, length, NUL-separated payload', () => {
  const buf = new ConfigWriter().text(Rec.MKDIR, '/tmp', '1777').raw(Rec.SECCOMP, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])).toBuffer();
  assert.equal(buf.readUInt32LE(0), Rec.MKDIR);
  assert.equal(buf.readUInt32LE(4), 10);
  assert.equal(buf.subarray(8, 18).toString(), '/tmp\u00001777\u0000');
  assert.equal(buf.readUInt32LE(18), Rec.SECCOMP);
  assert.equal(buf.readUInt32LE(22), 8);
  assert.throws(() => new ConfigWriter().text(Rec.ARG, 'a\0b'), /NUL byte/);
});

test('sync lines and wait statuses decode', () => {
  assert.deepEqual(parseSyncLine('pid 42'), { kind: 'pid', pid: 42 });
  assert.deepEqual(parseSyncLine('exit 256'), { kind: 'exit', status: 256 });
  assert.deepEqual(parseSyncLine('error rootfs: pivot_root: Invalid argument'), { kind: 'error', message: 'rootfs: pivot_root: Invalid argument' });
  assert.equal(parseSyncLine('bogus').kind, 'error');
  assert.deepEqual(decodeWaitStatus(3 << 8), { exitCode: 3, signal: null });
  assert.deepEqual(decodeWaitStatus(9), { exitCode: null, signal: 9 });
});
