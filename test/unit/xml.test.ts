import test from 'node:test';
import assert from 'node:assert/strict';
import { buildDomainXml, parseDomainXml, type DomainSpec } from '../../src/drivers/libvirt/domain-xml.js';
import { buildNetworkXml, parseNetworkXml } from '../../src/drivers/libvirt/network-xml.js';
import { BUILTIN_NETWORKS } from '../../src/service/networks.js';
import { virtXmlValidate } from '../helpers/tools.js';

const spec: DomainSpec = {
  name: 'web1', uuid: '2b1f1e0c-5d0e-4c44-9a57-3f2c3a7f0a11', type: 'qemu', vcpus: 1, ramMiB: 1024,
  disks: [{ file: '/var/lib/kumo/instances/web1/root.qcow2', format: 'qcow2' }, { file: '/var/lib/kumo/instances/web1/data1.qcow2', format: 'qcow2' }],
  seedIso: '/var/lib/kumo/instances/web1/seed.iso',
  nics: [{ mac: '52:54:00:12:34:56', network: 'default' }, { mac: '52:54:00:12:34:57', network: 'testnet' }],
  kernel: { kernel: '/var/lib/kumo/images/tiny/vmlinuz', initrd: '/var/lib/kumo/images/tiny/initrd.img', cmdline: 'console=ttyS0 root=/dev/vda rw' },
  consoleLog: '/var/lib/kumo/instances/web1/console.log',
  vncSocket: '/var/lib/kumo/instances/web1/vnc/vnc.sock',
  metadata: { image: 'tiny', flavor: 'small', createdBy: 'kumo' },
};

test('domain XML passes libvirt\'s own schema, with and without direct kernel boot', async () => {
  for (const s of [spec, { ...spec, kernel: undefined, type: 'kvm' as const }]) {
    const xml = buildDomainXml(s);
    const r = await virtXmlValidate(xml, 'domain');
    assert.ok(r.ok, `virt-xml-validate refused:\n${r.output}\n${xml}`);
  }
});

test('domain XML carries what the course asks for: VNC (on a unix socket, no port), serial log, ACPI, seed CD-ROM', () => {
  const xml = buildDomainXml(spec);
  assert.match(xml, /<graphics type="vnc">\s*<listen type="socket" socket="\/var\/lib\/kumo\/instances\/web1\/vnc\/vnc.sock"\/>\s*<\/graphics>/);
  assert.doesNotMatch(xml, /<graphics[^>]*port=|127\.0\.0\.1/);
  assert.match(xml, /<log file="\/var\/lib\/kumo\/instances\/web1\/console.log" append="on"\/>/);
  assert.match(xml, /<acpi\/>/);
  assert.match(xml, /<target dev="sda" bus="sata"\/>/);
  assert.match(xml, /<domain type="qemu">/);
});

test('domain XML reads back: uuid, sizes, NICs, disks, kumo metadata', () => {
  const facts = parseDomainXml(buildDomainXml(spec));
  assert.equal(facts.uuid, spec.uuid);
  assert.equal(facts.vcpus, 1);
  assert.equal(facts.ramMiB, 1024);
  assert.deepEqual(facts.nics, spec.nics);
  assert.deepEqual(facts.disks.map((d) => d.target), ['vda', 'vdb', 'sda']);
  assert.equal(facts.kumoImage, 'tiny');
  assert.equal(facts.vncSocket, spec.vncSocket);
  assert.equal(facts.vncPort, undefined);
});

test('a domain defined before VNC moved to a socket still reads back its loopback port', () => {
  const live = `<domain type="qemu"><name>old</name><devices><graphics type="vnc" port="5901" autoport="yes" listen="127.0.0.1">
    <listen type="address" address="127.0.0.1"/></graphics></devices></domain>`;
  const facts = parseDomainXml(live);
  assert.equal(facts.vncPort, 5901);
  assert.equal(facts.vncSocket, undefined);
});

test('values that look like XML stay values', async () => {
  const xml = buildDomainXml({ ...spec, consoleLog: '/tmp/a"b<c>&d\'.log' });
  assert.ok(!xml.includes('a"b<c>'), 'raw metacharacters must be escaped');
  assert.equal(parseDomainXml(xml).disks.length, 3);
  assert.ok((await virtXmlValidate(xml, 'domain')).ok);
});

test('network XML for nat, isolated and bridge passes libvirt\'s schema and reads back', async () => {
  const nets = [
    BUILTIN_NETWORKS.default!,
    { name: 'testnet', mode: 'isolated' as const, bridge: 'virbr9', ipv4: { address: '10.9.0.1', prefix: 24 } },
    { name: 'br', mode: 'bridge' as const, bridge: 'br0' },
    { name: 'sdn', mode: 'ovs' as const, bridge: 'ovsbr0' },
  ];
  for (const n of nets) {
    const xml = buildNetworkXml(n);
    const r = await virtXmlValidate(xml, 'network');
    assert.ok(r.ok, `virt-xml-validate refused:\n${r.output}\n${xml}`);
    const facts = parseNetworkXml(xml);
    assert.equal(facts.mode, n.mode);
    assert.equal(facts.bridge, n.bridge);
  }
});

test('the course\'s testnat.xml (netmask form) parses', () => {
  const f = parseNetworkXml(`<network><name>nat1</name><forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>
    <bridge name='virbr10' stp='on' delay='0'/><ip address='192.168.222.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.222.2' end='192.168.222.254'/></dhcp></ip></network>`);
  assert.deepEqual(f, { name: 'nat1', mode: 'nat', bridge: 'virbr10', address: '192.168.222.1', prefix: 24, dhcp: { start: '192.168.222.2', end: '192.168.222.254' } });
});
