import { test } from 'node:test';
import assert from 'node:assert/strict';
import { libvirtUriFault } from '../../src/model/libvirt-uri.js';
import { networkXmlPassthrough } from '../../src/model/network-xml-guard.js';
import { HostsSpecSchema } from '../../src/model/hosts-spec.js';
import { addressFault } from '../../src/model/address-policy.js';
import { DISK_HEAD_BYTES, rawDiskContent } from '../../src/model/disk-content.js';

/**
 * The pure checkers behind "the API can do what the cloud does and nothing more" (issue 14):
 * each refusal here was accepted before. The same attacks through the real API server are in
 * test/integration/attack-api.test.ts.
 */

const HOME = '/var/lib/kumo';
const cloud = { reach: 'cloud' as const, home: HOME };
const machine = { reach: 'machine' as const, home: HOME };

test('libvirt URIs: the transports and hosts kumo uses pass, for the cloud and for root', () => {
  for (const uri of ['qemu:///system', 'qemu:///session', 'qemu+ssh://root@kvm2/system', 'qemu+ssh://root@10.5.2.11:2222/system',
    'qemu+tls://kvm2.example.org/system', 'qemu+ssh://[fd00::2]/system', `qemu+unix:///system?socket=${HOME}/lab/libvirt/kvm1/run/libvirt-sock`]) {
    assert.equal(libvirtUriFault(uri, cloud), undefined, uri);
    assert.equal(libvirtUriFault(uri, machine), undefined, uri);
  }
});

test('libvirt URIs: ext, tcp, program and file parameters are refused from the cloud', () => {
  const refused: [string, RegExp][] = [
    ['qemu+ext:///system?command=/tmp/prog', /ext transport/],
    ['qemu+tcp://kvm2/system', /tcp transport/],
    ['qemu+libssh2://root@kvm2/system', /libssh2 transport/],
    ['qemu+ssh://root@kvm2/system?command=/tmp/prog', /parameter "command"/],
    ['qemu+ssh://root@kvm2/system?netcat=/tmp/prog', /parameter "netcat"/],
    ['qemu+ssh://root@kvm2/system?keyfile=/root/.ssh/id_rsa', /parameter "keyfile"/],
    ['qemu+ssh://root@kvm2/system?no_verify=1', /parameter "no_verify"/],
    ['qemu+ssh://root@kvm2/system?proxy=native', /parameter "proxy"/],
    ['qemu+tls://kvm2/system?pkipath=/etc', /parameter "pkipath"/],
    ['qemu:///system?socket=/run/libvirt/libvirt-sock', /parameter "socket"/],
    ['qemu+unix:///system?socket=/run/docker.sock', /not a lab libvirtd kumo made/],
    [`qemu+unix:///system?socket=${HOME}/lab/libvirt/kvm1/../../../../../run/docker.sock`, /not a lab libvirtd kumo made/],
    [`qemu+unix:///system?socket=${HOME}/lab/libvirt/kvm1/run/libvirt-sock&socket=/x`, /twice/],
    ['qemu+unix:///system?socket=%2Frun%2Fdocker.sock', /%-escapes/],
    ['qemu+unix://kvm2/system', /names a host/],
    ['qemu+ssh:///system', /names no host/],
    ['qemu+ssh://root@kvm2/etc', /not a libvirt URI kumo takes/],
    ['not a uri', /not a libvirt URI/],
  ];
  for (const [uri, says] of refused) {
    const fault = libvirtUriFault(uri, cloud);
    assert.ok(fault, `${uri} should be refused`);
    assert.match(fault.problem, says, uri);
    assert.ok(fault.fix.length > 0);
  }
});

test('libvirt URIs: root on the machine may name any socket and an ssh key file, still no programs', () => {
  assert.equal(libvirtUriFault('qemu+unix:///system?socket=/tmp/kumo-lab-x/run/libvirt-sock', machine), undefined);
  assert.equal(libvirtUriFault('qemu+ssh://root@kvm2/system?keyfile=/root/.ssh/kumo', machine), undefined);
  assert.equal(libvirtUriFault('qemu+ssh://root@127.0.0.1:2222/system?keyfile=/tmp/k&no_verify=1', machine), undefined, 'root may skip its own host key check');
  assert.match(libvirtUriFault('qemu+ssh://root@kvm2/system?no_verify=yes', machine)?.problem ?? '', /no_verify="yes"/);
  for (const uri of ['qemu+ext:///system?command=/tmp/prog', 'qemu+ssh://root@kvm2/system?command=/tmp/prog', 'qemu+ssh://root@kvm2/system?netcat=nc']) {
    assert.ok(libvirtUriFault(uri, machine), uri);
  }
});

test('libvirt URIs: a datacenter file\'s hosts: take the cloud\'s allow-list', () => {
  const hosts = (uri: string) => HostsSpecSchema.safeParse({
    segments: { backend: { cidr: '10.5.2.0/24', instances: true } },
    nodes: { kvm1: { roles: ['hypervisor'], links: { backend: '10.5.2.11' }, ssh: 'root@10.5.2.11', uri } }, dhcp: 'kvm1',
  });
  const bad = hosts('qemu+ext:///system?command=/tmp/prog');
  assert.equal(bad.success, false);
  assert.match(JSON.stringify(bad.error?.issues), /ext transport/);
  const good = hosts('qemu+ssh://root@10.5.2.11/system');
  assert.equal(good.success, true, JSON.stringify(good.error?.issues));
});

const net = (inner: string, attrs = '') => `<network${attrs}><name>n1</name><bridge name="virbr9"/>${inner}<ip address="192.168.9.1" netmask="255.255.255.0"/></network>`;

test('network XML: plain networks pass; passthrough namespaces, TFTP roots, hostdev and DOCTYPEs are refused from the cloud', () => {
  assert.equal(networkXmlPassthrough(`<?xml version="1.0"?>\n${net('<forward mode="nat"/>')}`, 'cloud'), undefined);
  const refused: [string, RegExp][] = [
    [net('<dnsmasq:options><dnsmasq:option value="dhcp-script=/tmp/x"/></dnsmasq:options>', ' xmlns:dnsmasq="http://libvirt.org/schemas/network/dnsmasq/1.0"'), /xmlns:dnsmasq|dnsmasq:options/],
    [net('<x:options/>'), /<x:options>/],
    [net('', ' xmlns="http://example.org/other"'), /attribute xmlns/],
    [net('<ip address="192.168.8.1" netmask="255.255.255.0"><tftp root="/"/></ip>'), /tftp/],
    [net('<forward mode="hostdev" managed="yes"><pf dev="eth0"/></forward>'), /hostdev/],
    [`<!DOCTYPE network [<!ENTITY e "x">]>${net('')}`, /DOCTYPE/],
    [net('<?evil x?>'), /processing instruction/],
  ];
  for (const [xml, says] of refused) {
    const fault = networkXmlPassthrough(xml, 'cloud');
    assert.ok(fault, `should be refused: ${xml}`);
    assert.match(fault, says);
  }
  // Root on the machine may, as with virsh net-define.
  assert.equal(networkXmlPassthrough(refused[0]![0], 'machine'), undefined);
});

test('address policy: loopback, link-local, private, unspecified, multicast (and IPv4 inside IPv6) are refused; public addresses pass', () => {
  const refused: [string, string][] = [
    ['127.0.0.1', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'], ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'], ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'], ['fd00::1', 'private'], ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'], ['100.100.100.200', 'shared'], ['localhost', 'not an address'],
  ];
  for (const [address, why] of refused) assert.equal(addressFault(address), why, address);
  for (const address of ['151.101.2.132', '172.32.0.1', '2a04:4e42::644', '8.8.8.8']) assert.equal(addressFault(address), undefined, address);
});

test('disk content: a 6-byte text file is no disk; partition tables and filesystems are', () => {
  assert.equal(rawDiskContent(Buffer.from('hello\n')), undefined);
  assert.equal(rawDiskContent(Buffer.from('root:$6$x:19000:0:99999:7:::\n'.repeat(100))), undefined);
  const sized = (patch: (b: Buffer) => void) => { const b = Buffer.alloc(DISK_HEAD_BYTES); patch(b); return b; };
  assert.match(rawDiskContent(sized((b) => b.writeUInt16BE(0x55aa, 510))) ?? '', /MBR/);
  assert.match(rawDiskContent(sized((b) => b.write('EFI PART', 512, 'latin1'))) ?? '', /GPT/);
  assert.match(rawDiskContent(sized((b) => b.writeUInt16LE(0xef53, 1080))) ?? '', /ext/);
  assert.match(rawDiskContent(sized((b) => b.write('XFSB', 0, 'latin1'))) ?? '', /XFS/);
  assert.match(rawDiskContent(sized((b) => b.write('CD001', 0x8001, 'latin1'))) ?? '', /ISO 9660/);
  assert.equal(rawDiskContent(Buffer.alloc(DISK_HEAD_BYTES)), undefined, 'zeros are no disk');
});
