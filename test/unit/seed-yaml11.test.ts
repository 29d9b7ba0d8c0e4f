import test from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { buildSeed, cloudConfigText } from '../../src/drivers/image/seed.js';

/**
 * cloud-init reads the seed with PyYAML (YAML 1.1): the files must mean there what kumo means.
 * A MAC of digits only is a base-60 number to a 1.1 reader, `on` a boolean; a guest whose MAC
 * was 52:54:00:21:31:01 waited for a NIC "41135117461" and never got an address.
 */
const asCloudInitReads = (text: string) => parse(text, { version: '1.1' }) as Record<string, unknown>;

test('network-config: a MAC of digits only stays a string for a YAML 1.1 reader', () => {
  const s = buildSeed({ instanceId: 'i1', hostname: 'h1', sshKeys: [], nics: [{ mac: '52:54:00:21:31:01' }] });
  const net = asCloudInitReads(s['network-config']) as { ethernets: { nic0: { match: { macaddress: unknown } } } };
  assert.equal(net.ethernets.nic0.match.macaddress, '52:54:00:21:31:01');
});

test('user-data: strings that YAML 1.1 would read as booleans or numbers stay strings', () => {
  const text = cloudConfigText({ write_files: [{ path: '/etc/flag', content: 'on' }], runcmd: ['yes', '0777'] });
  const doc = asCloudInitReads(text) as { write_files: { content: unknown }[]; runcmd: unknown[] };
  assert.equal(doc.write_files[0]!.content, 'on');
  assert.deepEqual(doc.runcmd, ['yes', '0777']);
});

test('the user\'s own cloud-config is read as cloud-init reads it: `on` is true there', () => {
  const s = buildSeed({ instanceId: 'i1', hostname: 'h1', sshKeys: [], nics: [], userData: '#cloud-config\npackage_update: on\n' });
  assert.equal(asCloudInitReads(s['user-data']).package_update, true);
});
