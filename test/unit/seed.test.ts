import test from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { verify } from 'unixcrypt';
import { buildSeed } from '../../src/drivers/image/seed.js';
import { hashPassword } from '../../src/model/password.js';
import { cloudInitNetworkSchema, cloudInitSchema, generatedUserData } from '../helpers/tools.js';
import { schemaErrors, schemaValidator } from '../helpers/json-schema.js';
import { networkConfigV2Schema } from '../helpers/network-config-v2.schema.js';
import { KumoError } from '../../src/model/errors.js';

const base = { instanceId: 'a1b2', hostname: 'web1', sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0 me@laptop'], nics: [{ mac: '52:54:00:aa:bb:cc' }] };

test('root password is stored as a sha512-crypt hash that verifies', () => {
  const h = hashPassword('test123');
  assert.match(h, /^\$6\$[A-Za-z0-9./]{16}\$[A-Za-z0-9./]{86}$/);
  assert.ok(verify('test123', h));
  assert.ok(!verify('test124', h));
  assert.notEqual(hashPassword('test123'), h, 'each hash has its own salt');
});

test('seed: meta-data names the instance, user-data sets root password and keys, network-config matches MACs', () => {
  const hash = hashPassword('test123');
  const s = buildSeed({ ...base, rootPasswordHash: hash });
  assert.deepEqual(parse(s['meta-data']), { 'instance-id': 'a1b2', 'local-hostname': 'web1' });
  assert.ok(s['user-data'].startsWith('#cloud-config\n'));
  const ud = parse(s['user-data']) as Record<string, unknown>;
  assert.equal(ud.hostname, 'web1');
  assert.deepEqual(ud.users, ['default', { name: 'root', lock_passwd: false, hashed_passwd: hash, ssh_authorized_keys: base.sshKeys }]);
  assert.equal(ud.disable_root, false);
  assert.ok(!s['user-data'].includes('test123'), 'plain text never reaches the seed');
  assert.deepEqual(parse(s['network-config']), { version: 2, ethernets: { nic0: { match: { macaddress: '52:54:00:aa:bb:cc' }, 'set-name': 'nic0', dhcp4: true } } });
});

test('the user\'s own user-data is merged: lists joined, kumo keeps the identity', () => {
  const s = buildSeed({
    ...base,
    userData: '#cloud-config\nhostname: evil\nusers: [default, {name: ops}]\nruncmd:\n  - echo hi\nwrite_files:\n  - path: /var/www/x\n    content: x\npackages: [nginx]\n',
  });
  const ud = parse(s['user-data']) as Record<string, unknown>;
  assert.equal(ud.hostname, 'web1');
  assert.deepEqual(ud.runcmd, ['echo hi']);
  assert.deepEqual(ud.packages, ['nginx']);
  assert.deepEqual((ud.users as unknown[]).slice(0, 1).concat((ud.users as unknown[]).slice(2)), ['default', { name: 'ops' }]);
  assert.equal((ud.write_files as unknown[]).length, 1);
});

test('bad user-data is refused with a clear message', () => {
  for (const [text, why] of [
    ['runcmd: [x]', /#cloud-config/],
    ['#cloud-config\nruncmd: [unclosed', /not valid YAML/],
    ['#cloud-config\n- a list', /mapping/],
    ['#cloud-config\nruncmd: echo', /must be a list/],
    ['#cloud-config\nruncmd: [{a: 1}]', /user-data runcmd\.0: a runcmd entry is a command line or a list of its words/],
  ] as const) {
    assert.throws(() => buildSeed({ ...base, userData: text }), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && why.test(e.message));
  }
});

test('every user-data kumo generates passes cloud-init schema', async () => {
  // The same list is checked by the Debian guest's own cloud-init (debian.test.ts).
  for (const [what, userData] of generatedUserData()) {
    const r = await cloudInitSchema(userData);
    assert.ok(r.ok, `cloud-init schema refused ${what}:\n${r.output}\n${userData}`);
    assert.doesNotMatch(r.output, /deprecat|invalid|error/i, `cloud-init schema warned on ${what}:\n${r.output}`);
  }
});

test('every network-config kumo writes passes cloud-init\'s network-config v2 schema; broken ones do not', async () => {
  const validate = schemaValidator().compile(networkConfigV2Schema);
  const nicSets = [[], [{ mac: '52:54:00:aa:bb:cc' }], [{ mac: '52:54:00:0a:1b:2c' }, { mac: '52:54:00:fe:dc:ba' }, { mac: '52:54:00:00:00:01' }]];
  for (const nics of nicSets) {
    const text = buildSeed({ ...base, nics })['network-config'];
    assert.equal(schemaErrors(validate, parse(text)), '', text);
    // Debian 12's cloud-init (22.4) cannot check network-config; a later one can, and then it does.
    const own = await cloudInitNetworkSchema(text);
    if (own) assert.ok(own.ok, `cloud-init schema refused the network-config:\n${own.output}\n${text}`);
  }
  const good = parse(buildSeed(base)['network-config']) as { ethernets: { nic0: Record<string, unknown> } };
  const broken: [string, unknown, RegExp][] = [
    ['version 1', { ...good, version: 1 }, /\/version must be equal to constant/],
    ['no devices', { version: 2 }, /must have required property 'ethernets'/],
    ['a MAC in capitals', { ...good, ethernets: { nic0: { ...good.ethernets.nic0, match: { macaddress: '52:54:00:AA:BB:CC' } } } }, /macaddress must match pattern/],
    ['a misspelt key', { ...good, ethernets: { nic0: { ...good.ethernets.nic0, dhcp: true } } }, /additional properties: dhcp/],
    ['dhcp4 as text', { ...good, ethernets: { nic0: { ...good.ethernets.nic0, dhcp4: 'yes' } } }, /dhcp4 must be boolean/],
  ];
  for (const [what, doc, why] of broken) assert.match(schemaErrors(validate, doc), why, what);
});
