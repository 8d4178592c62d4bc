import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError, parseBytes, parseNumber, wantsHelp } from './args.js';

test('parseNumber applies its rule and names the flag in the error', () => {
  assert.equal(parseNumber('FAASBOX_PORT', '0'), 0);
  assert.equal(parseNumber('--cpus', '0.5', 'positive'), 0.5);
  assert.equal(parseNumber('--memory', '256', 'whole'), 256);
  assert.equal(parseNumber('--memory', ' 256 ', 'whole'), 256);
  const bad: [string, Parameters<typeof parseNumber>[2], string][] = [
    ['-1', 'non-negative', 'FAASBOX_PORT must be a non-negative number, got "-1"'],
    ['', 'non-negative', 'FAASBOX_PORT must be a non-negative number, got ""'],
    ['abc', 'non-negative', 'FAASBOX_PORT must be a non-negative number, got "abc"'],
    ['Infinity', 'non-negative', 'FAASBOX_PORT must be a non-negative number, got "Infinity"'],
    ['0', 'positive', 'FAASBOX_PORT must be a positive number, got "0"'],
    ['1.5', 'whole', 'FAASBOX_PORT must be a whole number, got "1.5"'],
    ['1e3', 'whole', 'FAASBOX_PORT must be a whole number, got "1e3"'],
    ['0x10', 'whole', 'FAASBOX_PORT must be a whole number, got "0x10"'],
  ];
  for (const [v, rule, message] of bad) {
    assert.throws(() => parseNumber('FAASBOX_PORT', v, rule), (err: Error) => err instanceof CliError && err.message === message, `${v} (${rule})`);
  }
});

test('parseBytes reads sizes with units and refuses the rest', () => {
  assert.equal(parseBytes('--memory', '4096'), 4096);
  assert.equal(parseBytes('--memory', '64m'), 64 * 1024 * 1024);
  assert.equal(parseBytes('--memory', '1G'), 1024 ** 3);
  assert.throws(() => parseBytes('--memory', '64x'), /--memory must be a size like 64m or 1g, got "64x"/);
  assert.throws(() => parseBytes('--memory', '0'), /--memory must be positive/);
});

test('wantsHelp sees -h/--help anywhere before "--", never after it', () => {
  assert.equal(wantsHelp(['--help']), true);
  assert.equal(wantsHelp(['ID', '-h']), true);
  assert.equal(wantsHelp(['--all', '--help', '--json']), true);
  assert.equal(wantsHelp([]), false);
  assert.equal(wantsHelp(['--rootfs', 'x', '--', 'node', '--help']), false);
  assert.equal(wantsHelp(['--help=yes']), false);
});
