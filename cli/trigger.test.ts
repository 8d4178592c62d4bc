import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError } from './args.js';
import { destinationOf } from './trigger.js';

test('destination flags: queue:NAME, function:NAME and http(s) URLs become the body\'s DEST shapes', () => {
  assert.deepEqual(destinationOf('--on-success', 'queue:outcomes'), { queue: 'outcomes' });
  assert.deepEqual(destinationOf('--on-failure', 'function:alarm'), { function: 'alarm' });
  assert.deepEqual(destinationOf('--on-success', 'https://hooks.example/done'), { url: 'https://hooks.example/done' });
});

test('a destination flag of another form is refused naming the flag', () => {
  assert.throws(() => destinationOf('--on-failure', 'ftp://x'), (e: unknown) => e instanceof CliError && /--on-failure "ftp:\/\/x"/.test(e.message));
  assert.throws(() => destinationOf('--on-success', 'queue:'), (e: unknown) => e instanceof CliError && /--on-success/.test(e.message));
});
