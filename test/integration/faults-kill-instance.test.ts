import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { assertNoDebris, debris } from '../helpers/debris.js';
import { walkKills } from '../helpers/faults.js';
import { ImageService } from '../../src/service/images.js';

/**
 * kill -9 of kumo between any two steps of an instance's create and delete (issue 21): the next
 * kumo command undoes the create, or finishes the delete, and nothing is left.
 */
let env: TestEnv;

before(async () => {
  env = await makeTestEnv('fki');
  await new ImageService(env.ctx).buildTiny();
});
after(async () => env?.cleanup());

const createArgs = (name: string) => ['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password', 'x',
  '--network', env.network, '--disk', '1'];

test('create killed at every step: the next command undoes it, nothing is left', async () => {
  const name = `${env.prefix}-c`;
  const steps = await walkKills(env, {
    operation: 'create instance', run: createArgs(name),
    async settled(step, before) {
      assertNoDebris(before, await debris(env), `create killed at step ${step}, then "kumo instance list"`);
    },
    async reset() {
      const del = await env.cli(['instance', 'delete', name]);
      assert.equal(del.code, 0, del.stderr);
    },
  });
  assert.ok(steps >= 5, `create has ${steps} step boundaries`);
});

test('delete killed at every step: the next command finishes it, nothing is left', async () => {
  const name = `${env.prefix}-d`;
  const before = await debris(env);
  const made = await env.cli(createArgs(name));
  assert.equal(made.code, 0, made.stderr);
  const steps = await walkKills(env, {
    operation: 'delete instance', run: ['instance', 'delete', name],
    async settled(step) {
      assertNoDebris(before, await debris(env), `delete killed at step ${step}, then "kumo instance list"`);
      const again = await env.cli(createArgs(name));
      assert.equal(again.code, 0, again.stderr);
    },
    async reset() {
      assertNoDebris(before, await debris(env), 'the complete delete');
      const again = await env.cli(createArgs(name));
      assert.equal(again.code, 0, again.stderr);
    },
  });
  assert.ok(steps >= 4, `delete has ${steps} step boundaries`);
  assert.equal((await env.cli(['instance', 'delete', name])).code, 0);
  assertNoDebris(before, await debris(env), 'the last delete');
});
