import { test } from 'node:test';
import assert from 'node:assert/strict';
import { libvirtUriFault } from '../../src/model/libvirt-uri.js';
import { HostsSpecSchema } from '../../src/model/hosts-spec.js';
import { endpointOf } from '../../src/drivers/libvirt/rpc/transport.js';

/**
 * libvirt's test driver behind a libvirtd (test+unix:///FILE.xml?socket=SOCK): a fake hypervisor
 * for dry runs and the plan benchmark. Root on the machine may register one; the cloud may not
 * (the daemon reads the node file as root); a datacenter file's schema checks only its shape, as
 * it does for socket=, and registering from the file goes through the cloud's check.
 */
const HOME = '/var/lib/kumo';
const cloud = { reach: 'cloud' as const, home: HOME };
const machine = { reach: 'machine' as const, home: HOME };
const GOOD = 'test+unix:///var/tmp/nodes/kvm1.xml?socket=/var/tmp/lv/run/libvirt-sock';

test('test-driver URI: root on the machine may use one; its protocol connection opens test:///FILE on the daemon\'s socket', () => {
  assert.equal(libvirtUriFault(GOOD, machine), undefined);
  assert.deepEqual(endpointOf(GOOD), { kind: 'unix', uri: GOOD, socket: '/var/tmp/lv/run/libvirt-sock', openUri: 'test:///var/tmp/nodes/kvm1.xml' });
});

test('test-driver URI: the cloud may not register one, and is told who may', () => {
  const fault = libvirtUriFault(GOOD, cloud);
  assert.match(fault?.problem ?? '', /test driver.*only root on the machine/);
  assert.match(fault?.fix ?? '', /kumo host add NAME --uri URI/);
});

test('test-driver URI: a datacenter file may name one (checked again where a host is registered)', () => {
  const parsed = HostsSpecSchema.safeParse({
    segments: { backend: { cidr: '10.5.2.0/24', instances: true } },
    nodes: { kvm1: { roles: ['hypervisor'], links: { backend: '10.5.2.11' }, netns: 'kvm1', uri: GOOD } }, dhcp: 'kvm1',
  });
  assert.equal(parsed.success, true, parsed.error?.message);
});

test('test-driver URI: anything but an absolute .xml file and one socket is refused, for root too', () => {
  const refused: [string, RegExp][] = [
    ['test:///default', /not a test-driver URI kumo takes/],
    ['test+ssh://root@kvm2/var/x.xml', /not a test-driver URI kumo takes/],
    ['test+unix:///var/x.xml', /not a test-driver URI kumo takes/],
    ['test+unix:///var/x.xml?socket=/s&command=/bin/sh', /not a test-driver URI kumo takes/],
    ['test+unix:///etc/shadow?socket=/s', /not a plain absolute path ending in \.xml/],
    ['test+unix:///var/x y.xml?socket=/s', /not a plain absolute path ending in \.xml/],
    ['test+unix:///var/x.xml?socket=relative', /socket="relative"/],
    ['test+unix:///var/x.xml?socket=%2Fs', /%-escapes/],
  ];
  for (const [uri, says] of refused) {
    const fault = libvirtUriFault(uri, machine);
    assert.ok(fault, `${uri} should be refused`);
    assert.match(fault.problem, says, uri);
    assert.throws(() => endpointOf(uri), /INVALID|libvirt URI/, uri);
  }
});
