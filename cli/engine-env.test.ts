import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engineEnv } from './engine-env.js';

test('the engine settings come from the environment variables they always had', () => {
  assert.deepEqual(engineEnv({}), {});
  assert.deepEqual(engineEnv({ FAASBOX_STATE_DIR: '/s', FAASBOX_CGROUP_ROOT: '/r', FAASBOX_SEEDS: '0', FAASBOX_ZYGOTE: '0', FAASBOX_INIT_BIN: '/bin/x' }), {
    stateDir: '/s',
    cgroupRoot: '/r',
    seeds: 0,
    zygote: false,
    initBin: '/bin/x',
  });
  // Only 0 turns the zygote off.
  assert.equal(engineEnv({ FAASBOX_ZYGOTE: '1' }).zygote, true);
});

test('a seed count that is not a whole number is refused, naming the variable', () => {
  assert.throws(() => engineEnv({ FAASBOX_SEEDS: 'two' }), /FAASBOX_SEEDS must be a whole number/);
  assert.throws(() => engineEnv({ FAASBOX_SEEDS: '-1' }), /FAASBOX_SEEDS/);
});
