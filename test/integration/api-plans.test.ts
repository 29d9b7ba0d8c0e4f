import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { API, ApiClient, apiToken, closeApiWorld, deleteMadeResources, listenApi, refused, type TestApi } from '../helpers/api.js';
import { ImageService } from '../../src/service/images.js';
import { hashPassword } from '../../src/model/password.js';

/**
 * Datacenter files through the REST API, in-process on 127.0.0.1:0 over a test's own KUMO_HOME
 * with the tiny image: plan, apply and destroy as operations, and a bad file's 400.
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;
let base: string;
let token: string;

before(async () => {
  env = await makeTestEnv('pln');
  token = apiToken(env.ctx);
  await new ImageService(env.ctx).buildTiny();
  api = await listenApi(env.ctx);
  base = api.base;
  client = new ApiClient(base, token);
});

// Pass or fail: server, the group's instance if the destroy did not get to it, the test's world.
after(() => closeApiWorld({ env, api, client }, (e) => deleteMadeResources(e.ctx)));

const call = (...a: Parameters<ApiClient['call']>) => client.call(...a);
const finished = (...a: Parameters<ApiClient['finished']>) => client.finished(...a);

test('datacenter files: plan, apply and destroy as operations; a bad file is a 400 naming line and column', async () => {
  const group = `${env.prefix}-p`;
  const member = `${group}-1`;
  const file = [
    `name: ${env.prefix}-dc`,
    'instances:',
    `  ${group}:`,
    '    image: tiny',
    '    flavor: small',
    `    networks: [${env.network}]`,
    `    root_password_hash: "${hashPassword('pw')}"`,
    '',
  ].join('\n');
  const plan = (body: unknown) => call('POST', `${API}/plans`, body);
  refused(await plan({}), 400, 'INVALID_INPUT', ['body.file']);
  refused(await plan({ file, name: 'x' }), 400, 'INVALID_INPUT', ['body.name']);
  const syntax = await plan({ file: 'name: dc\ninstances: [\n', filename: 'dc.yaml' });
  refused(syntax, 400, 'INVALID_INPUT');
  assert.match(syntax.body.error.message, /^dc\.yaml:\d+:\d+: /);
  const wrong = await plan({ file: file.replace('flavor: small', 'flavor: 7'), filename: 'dc.yaml' });
  refused(wrong, 400, 'INVALID_INPUT');
  assert.match(wrong.body.error.message, new RegExp(`^dc\\.yaml:5:13: instances\\.${group}\\.flavor: `));
  const unknown = await plan({ file: `${file}colour: blue\n` });
  refused(unknown, 400, 'INVALID_INPUT');
  assert.match(unknown.body.error.message, /^datacenter\.yaml:\d+:\d+: .*colour/);
  for (const action of ['apply', 'destroy']) refused(await call('POST', `${API}/plans/${action}`, { file: 'name: [' }), 400, 'INVALID_INPUT');

  const planned = await plan({ file });
  assert.equal(planned.status, 200, JSON.stringify(planned.body));
  assert.deepEqual(planned.body, { datacenter: `${env.prefix}-dc`, changes: [{ action: 'create', kind: 'instance', name: member, why: 'tiny, small', host: 'local' }] });
  const applying = await call('POST', `${API}/plans/apply`, { file });
  assert.equal(applying.status, 202, JSON.stringify(applying.body));
  assert.equal(applying.headers.get('location'), `${API}/operations/${applying.body.operation.id}`);
  // One apply or destroy of a datacenter at a time.
  refused(await call('POST', `${API}/plans/destroy`, { file }), 409, 'IN_USE');
  const applied = await finished(applying.body.operation.id, 600_000);
  assert.equal(applied.state, 'succeeded', JSON.stringify(applied.error));
  assert.deepEqual([applied.kind, applied.steps, applied.result.changes.length], ['datacenter.apply', [`create instance ${member}`], 1]);
  assert.equal((await call('GET', `${API}/instances/${member}`)).body.state, 'running');
  assert.deepEqual((await plan({ file })).body.changes, [], 'nothing left to do');

  const destroying = await call('POST', `${API}/plans/destroy`, { file });
  assert.equal(destroying.status, 202, JSON.stringify(destroying.body));
  const destroyed = await finished(destroying.body.operation.id);
  assert.equal(destroyed.state, 'succeeded', JSON.stringify(destroyed.error));
  assert.deepEqual(destroyed.steps, [`delete instance ${member}`]);
  refused(await call('GET', `${API}/instances/${member}`), 404, 'NOT_FOUND');
});
