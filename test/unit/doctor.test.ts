import test from 'node:test';
import assert from 'node:assert/strict';
import { buildDomainXml, parseDomainXml, type DomainSpec } from '../../src/drivers/libvirt/domain-xml.js';
import { domainOwner, problemsIn } from '../../src/service/doctor.js';

const uuid = '2b1f1e0c-5d0e-4c44-9a57-3f2c3a7f0a11';
const spec: DomainSpec = {
  name: 'web1', uuid, type: 'qemu', vcpus: 1, ramMiB: 256,
  disks: [{ file: '/var/lib/kumo/instances/web1/root.qcow2', format: 'qcow2' }],
  nics: [], consoleLog: '/var/lib/kumo/instances/web1/console.log',
  vncSocket: '/var/lib/kumo/instances/web1/vnc/vnc.sock',
  metadata: { image: 'tiny', createdBy: 'kumo' },
};
const facts = (s: DomainSpec = spec) => parseDomainXml(buildDomainXml(s));

test('the domain XML\'s kumo:created-by is read back (orphans are found by it)', () => {
  assert.equal(facts().kumoCreatedBy, 'kumo');
  const foreign = buildDomainXml(spec).replace(/<metadata>[\s\S]*<\/metadata>/, '');
  assert.equal(parseDomainXml(foreign).kumoCreatedBy, undefined);
});

test('an orphan is kumo\'s metadata, a root disk in this kumo\'s instances folder and no record by UUID', () => {
  const none = new Set<string>();
  assert.equal(domainOwner(facts(), uuid, none, '/var/lib/kumo/instances'), 'orphan');
  assert.equal(domainOwner(facts(), uuid, none, '/var/lib/kumo/instances/'), 'orphan');
  // A record holds its UUID: an instance, whatever its name now.
  assert.equal(domainOwner(facts(), uuid.toUpperCase(), new Set([uuid]), '/var/lib/kumo/instances'), 'instance');
  // Another kumo home sharing this libvirt (a test run, a second install): not this one's to touch.
  assert.equal(domainOwner(facts(), uuid, none, '/tmp/other-home/instances'), 'not-ours');
  assert.equal(domainOwner(facts(), uuid, none, '/var/lib/kumo/inst'), 'not-ours', 'a folder name prefix is not the folder');
  // Without kumo's metadata (or made by something else), never kumo's.
  const foreign = parseDomainXml(buildDomainXml(spec).replace(/<metadata>[\s\S]*<\/metadata>/, ''));
  assert.equal(domainOwner(foreign, uuid, none, '/var/lib/kumo/instances'), 'not-ours');
  assert.equal(domainOwner(facts({ ...spec, metadata: { image: 'tiny', createdBy: 'someone' } }), uuid, none, '/var/lib/kumo/instances'), 'not-ours');
});

test('problems count orphans, missing domains and hosts that did not answer', () => {
  assert.equal(problemsIn({ orphans: [], missing: [], unfinished: [], unreachable: [] }), 0);
  assert.equal(problemsIn({ orphans: [], unfinished: [], missing: [{ instance: 'a', project: 'default', host: 'local', uuid }], unreachable: [{ host: 'h', error: 'x' }] }), 2);
});
