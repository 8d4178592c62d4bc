/**
 * Every faasbox command answers --help with its usage and exit 0, without doing anything:
 * run with a fresh state dir and no Redis or gateway to reach, a command that ran instead
 * would fail, wait, or leave the state dir behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/faasbox.js');

test('each top-level command and each image command answers --help and does nothing', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'faasbox-help-'));
  const state = path.join(work, 'state');
  try {
    // Port 9 (discard) on loopback: nothing listens, so a command that did call out would fail.
    const env: NodeJS.ProcessEnv = { ...process.env, FAASBOX_STATE_DIR: state, FAASBOX_URL: 'http://127.0.0.1:9', FAASBOX_API_KEY: 'k'.repeat(32), FAASBOX_REDIS_URL: 'redis://127.0.0.1:9' };
    delete env.FAASBOX_CONFIG;
    const cases: [string[], RegExp][] = [
      [['--help'], /^Usage: faasbox <command>/],
      [['up', '--help'], /^Usage: faasbox up /],
      [['gateway', '--help'], /^Usage: faasbox gateway\|worker\|scheduler/],
      [['worker', '-h'], /^Usage: faasbox gateway\|worker\|scheduler/],
      [['scheduler', '--help'], /^Usage: faasbox gateway\|worker\|scheduler/],
      [['deploy', 'f', '--code', 'export default () => 1', '--help'], /^Usage: faasbox deploy /],
      [['invoke', 'f', '--help'], /^Usage: faasbox invoke /],
      [['logs', 'some-id', '--help'], /^Usage: faasbox logs /],
      [['ls', '--help'], /^Usage: faasbox ls/],
      [['get', 'f', '-h'], /^Usage: faasbox get /],
      [['rm', 'f', '--help'], /^Usage: faasbox rm /],
      [['dlq', '--help'], /^Usage: faasbox dlq <command>/],
      [['dlq', 'ls', 'f', '--help'], /^Usage: faasbox dlq ls /],
      [['dlq', 'show', 'f', 'id', '--help'], /^Usage: faasbox dlq show /],
      [['dlq', 'redrive', 'f', '--all', '--help'], /^Usage: faasbox dlq redrive /],
      [['dlq', 'purge', 'f', '--help'], /^Usage: faasbox dlq purge /],
      [['ctr', '--help'], /^Usage: faasbox ctr <command>/],
      [['ctr', 'gc', '--help'], /^Usage: faasbox ctr gc /],
      [['image', '--help'], /^Usage: faasbox image <command>[\s\S]*pull REF[\s\S]*prune/],
      [['image', 'build', 'busybox', '--help'], /^Usage: faasbox image build/],
      [['image', 'ls', '--help'], /^Usage: faasbox image ls/],
      [['image', 'inspect', 'x:1', '--help'], /^Usage: faasbox image inspect REF/],
      [['image', 'rm', 'x:1', '--force', '-h'], /^Usage: faasbox image rm REF/],
      [['image', 'prune', '--help'], /^Usage: faasbox image prune/],
      [['image', 'pull', 'x:1', '--help'], /^Usage: faasbox image pull REF/],
    ];
    for (const [args, usage] of cases) {
      const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, `faasbox ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, usage, `faasbox ${args.join(' ')}`);
      assert.equal(existsSync(state), false, `faasbox ${args.join(' ')} made the state dir: it ran`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
