import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { DatacenterSchema } from '../../src/model/datacenter.js';
import { parseYamlFile } from '../../src/model/yaml-file.js';
import { KumoError } from '../../src/model/errors.js';
import { chooseHost, type HostView } from '../../src/service/host.js';
import { FirewallService } from '../../src/service/firewall.js';
import type { Context } from '../../src/service/context.js';
import { cloudConfigText, nfsMountConfig } from '../../src/drivers/image/seed.js';

const EXAMPLE = readFileSync(join(import.meta.dirname, '../../../examples/course-datacenter.yaml'), 'utf8');
// any: the example's YAML is edited freely here; checking its shape is the schema's job, under test.
type Doc = any;
const withEdit = (edit: (dc: Doc) => void): string => {
  const dc = parse(EXAMPLE) as Doc;
  edit(dc);
  return stringify(dc);
};
const load = (text: string) => parseYamlFile(text, DatacenterSchema, 'dc.yaml', 'datacenter');
const refused = (text: string, says: RegExp) =>
  assert.throws(() => load(text), (e: unknown) => e instanceof KumoError && says.test(e.message), `expected ${says}`);

test('the file\'s flavors, placement, user_data, firewall and monitoring sections parse with their defaults', () => {
  const dc = load(withEdit((d) => {
    d.flavors = { web: { vcpus: 1, ram_mib: 512, disk_gib: 2 } };
    d.instances.web = { ...d.instances.web, flavor: 'web', placement: 'pack', hosts: ['kvm1'], user_data: { write_files: [{ path: '/x', content: 'y' }] } };
    d.firewall = { allow: [{ host: 'lb', port: 22, from: 'backend' }] };
    d.monitoring = { interval: 10 };
  }));
  assert.deepEqual(dc.flavors, { web: { vcpus: 1, ram_mib: 512, disk_gib: 2 } });
  assert.equal(dc.instances.web!.placement, 'pack');
  assert.deepEqual(dc.firewall.allow, [{ host: 'lb', port: 22, proto: 'tcp', from: 'backend' }]);
  assert.deepEqual(dc.monitoring, { interval: 10, retention: '24h' });
  assert.equal(load(EXAMPLE).instances.web!.placement, 'spread', 'spread unless the file says otherwise');
});

test('impossible placements, kumo-owned user-data keys and unfilterable firewall targets are refused with line:col', () => {
  refused(withEdit((d) => { d.instances.web.hosts = ['stg']; }), /^dc\.yaml:\d+:\d+: instances\.web\.hosts\.0: "stg" is not a hypervisor of the lab \(kvm1, kvm2\)/);
  refused(withEdit((d) => { d.instances.web.user_data = { hostname: 'x' }; }), /user_data\.hostname: kumo sets hostname itself/);
  refused(withEdit((d) => { d.instances.web.user_data = { runcmd: 'echo' }; }), /user_data\.runcmd: runcmd must be a list/);
  refused(withEdit((d) => { d.firewall = { allow: [{ host: 'kvm1', port: 22, from: 'backend' }] }; }), /firewall\.allow\.0\.host: kvm1 has no filtered input/);
  refused(withEdit((d) => { d.firewall = { allow: [{ host: 'lb', port: 22, from: 'nowhere' }] }; }), /firewall\.allow\.0\.from: "nowhere" is neither a lab segment/);
  refused(withEdit((d) => { d.flavors = { web: { vcpus: 0, ram_mib: 512, disk_gib: 2 } }; }), /flavors\.web\.vcpus/);
  refused(withEdit((d) => { d.monitoring = { retention: 'forever' }; }), /monitoring\.retention: a duration/);
});

test('what apply would trip on is refused by the schema at the key\'s line:col: host bits, a non-key, sizes kumo refuses, user_data shapes, mount paths', () => {
  refused(withEdit((d) => { d.firewall = { allow: [{ host: 'lb', port: 22, from: '10.5.2.7/24' }] }; }),
    /^dc\.yaml:\d+:\d+: firewall\.allow\.0\.from: 10\.5\.2\.7\/24 has host bits set .*did you mean 10\.5\.2\.0\/24, or the one address 10\.5\.2\.7\/32\?/);
  refused(withEdit((d) => { d.instances.web.ssh_keys = ['not a key']; }), /^dc\.yaml:\d+:\d+: instances\.web\.ssh_keys\.0: not an ssh public key/);
  refused(withEdit((d) => { d.flavors = { web: { vcpus: 1, ram_mib: 512, disk_gib: 5000 } }; }), /^dc\.yaml:\d+:\d+: flavors\.web\.disk_gib: Too big: expected number to be <=4096/);
  refused(withEdit((d) => { d.flavors = { web: { vcpus: 1, ram_mib: 500_000, disk_gib: 5 } }; }), /flavors\.web\.ram_mib: Too big: expected number to be <=262144/);
  refused(withEdit((d) => { d.instances.web.user_data = { runcmd: [{ a: 1 }] }; }), /^dc\.yaml:\d+:\d+: instances\.web\.user_data\.runcmd\.0: a runcmd entry is a command line or a list of its words/);
  refused(withEdit((d) => { d.instances.web.user_data = { write_files: [{ content: 'x' }] }; }), /user_data\.write_files\.0\.path: path must be an absolute path/);
  refused(withEdit((d) => { d.instances.web.user_data = { write_files: [{ path: '/x', content: 5 }] }; }), /user_data\.write_files\.0\.content: content must be a string/);
  refused(withEdit((d) => { d.instances.web.user_data = { packages: [{ x: 1 }] }; }), /user_data\.packages\.0: a package is a name/);
  for (const path of ['/../etc', '/var/www/', '/var//www', '/var/./www', 'var/www']) {
    refused(withEdit((d) => { d.instances.web.mount.path = path; }), /^dc\.yaml:\d+:\d+: instances\.web\.mount\.path: /);
  }
  for (const path of ['/', '/etc', '/usr', '/proc/x', '/sys/fs', '/dev/shm', '/boot']) {
    refused(withEdit((d) => { d.instances.web.mount.path = path; }), /instances\.web\.mount\.path: ".*" is a system folder of the guest/);
  }
  // What stays allowed.
  const ok = load(withEdit((d) => {
    d.instances.web.ssh_keys = ['  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q user@host '];
    d.instances.web.mount.path = '/var/www/shared';
    d.instances.web.user_data = { runcmd: ['echo a', ['ls', '-l']], write_files: [{ path: '/etc/a', content: 'b', permissions: 644 }], packages: ['curl', ['nginx', '1.2']] };
    d.firewall = { allow: [{ host: 'lb', port: 22, from: '10.5.2.7' }, { host: 'lb', port: 23, from: '10.5.2.0/24' }] };
  }));
  assert.equal(ok.instances.web!.mount!.path, '/var/www/shared');
});

test('the schema reports every problem at once, not the first few', () => {
  assert.throws(() => load(withEdit((d) => {
    d.instances.web.ssh_keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    d.instances.web.mount.path = '/etc';
  })), (e: unknown) => e instanceof KumoError && e.message.split('\n').length === 7 && /ssh_keys\.5/.test(e.message) && /mount\.path/.test(e.message));
});

const host = (name: string, memoryMiB: number, allocatedMiB: number, instances = 0): HostView => ({
  name, uri: `qemu+test:///${name}`, roles: ['hypervisor'], up: true, cpus: 2, memoryMiB, allocatedMiB, allocatedVcpus: 0, instances,
} as HostView);

test('placement: spread takes the most memory left, pack fills one host first, only limits the hosts', () => {
  const hosts = [host('a', 8192, 1024, 1), host('b', 8192, 0), host('c', 8192, 4096, 4)];
  assert.equal(chooseHost(hosts, 1, 1024), 'b');
  assert.equal(chooseHost(hosts, 1, 1024, { pack: true }), 'c');
  assert.equal(chooseHost(hosts, 1, 1024, { only: ['a', 'c'] }), 'a');
  assert.equal(chooseHost(hosts, 1, 1024, { exclude: ['b'] }), 'a');
  assert.equal(chooseHost(hosts, 1, 6000, { pack: true }), 'a', 'pack still needs room');
  assert.throws(() => chooseHost(hosts, 1, 9000), /no hypervisor has room for 1 vCPU \/ 9000 MiB/);
  assert.throws(() => chooseHost(hosts, 1, 512, { only: ['z'] }), /none of the hosts z is a registered hypervisor/);
});

test('firewall.allow opens a port on a filtered node from a segment or a CIDR, and nothing else', () => {
  const dc = load(withEdit((d) => {
    d.firewall = { allow: [{ host: 'lb', port: 22, from: 'backend' }, { host: 'stg', port: 9100, from: '10.5.2.10/32' }] };
  }));
  const rules = new FirewallService({} as Context).derive(dc);
  const input = (h: string) => rules.find((r) => r.host === h)!.tables[0]!.chains.find((c) => c.name === 'input')!.rules;
  assert.deepEqual(input('lb').find((r) => r.id === 'allow-1'), { id: 'allow-1', saddr: '10.5.2.0/24', proto: 'tcp', dport: 22, action: 'accept' });
  assert.deepEqual(input('stg').find((r) => r.id === 'allow-2'), { id: 'allow-2', saddr: '10.5.2.10/32', proto: 'tcp', dport: 9100, action: 'accept' });
  assert.equal(input('lb').at(-1)!.action, 'drop', 'the rest stays dropped');
  assert.equal(input('lb').filter((r) => r.id.startsWith('allow-')).length, 1, 'each node gets only its own openings');
});

test('a group\'s user-data: the share mount and runcmd first, the file\'s user_data merged after', () => {
  const text = cloudConfigText(nfsMountConfig('10.5.3.10', '10.5.3.10:/site', '/var/www'), { runcmd: ['serve'] },
    { runcmd: ['later'], write_files: [{ path: '/etc/a', content: 'b' }] });
  const doc = parse(text) as Record<string, unknown>;
  assert.ok(text.startsWith('#cloud-config\n'));
  assert.deepEqual(doc.mounts, [['10.5.3.10:/site', '/var/www', 'nfs4', 'vers=4.1,actimeo=1,addr=10.5.3.10,_netdev,nofail', '0', '0']]);
  assert.deepEqual((doc.runcmd as string[]).slice(2), ['serve', 'later'], 'the wait for the mount, then runcmd, then user_data\'s');
  assert.deepEqual(doc.write_files, [{ path: '/etc/a', content: 'b' }]);
  assert.equal(cloudConfigText(), '#cloud-config\n{}\n');
});

/** The course topology as a `hosts:` section: real hosts reached over ssh, DHCP on kvm1. */
const hostsDoc = (edit: (h: Doc) => void = () => undefined): string => withEdit((d) => {
  delete d.lab;
  d.hosts = {
    segments: { frontend: { cidr: '10.5.1.0/24' }, backend: { cidr: '10.5.2.0/24', instances: true }, storage: { cidr: '10.5.3.0/24', instances: true } },
    dhcp: 'kvm1',
    nodes: {
      lb: { roles: ['lb'], links: { frontend: '10.5.1.213', backend: '10.5.2.10' }, ssh: 'root@10.5.2.10' },
      kvm1: { roles: ['hypervisor'], links: { backend: '10.5.2.11', storage: '10.5.3.11' }, ssh: 'root@10.5.2.11' },
      kvm2: { roles: ['hypervisor'], links: { backend: '10.5.2.12', storage: '10.5.3.12' }, netns: 'x-kvm2', uri: 'qemu+unix:///system?socket=/x/sock' },
      stg: { roles: ['storage'], links: { storage: '10.5.3.10' }, ssh: 'root@10.5.3.10' },
    },
  };
  edit(d.hosts);
});

test('hosts: the lab\'s shape with shells, URIs and a DHCP node; the same checks on LBs, groups and the firewall', () => {
  const dc = load(hostsDoc());
  assert.equal(dc.lab, undefined);
  assert.equal(dc.hosts!.nodes.kvm1!.ssh, 'root@10.5.2.11');
  assert.deepEqual(dc.hosts!.nodes.kvm1!.interfaces, {});
  refused(withEdit((d) => { d.hosts = parse(hostsDoc()).hosts; }), /^dc\.yaml:\d+:\d+: hosts: give either lab .* or hosts .*, not both/);
  refused(hostsDoc((h) => { h.nodes.kvm1.netns = 'x-kvm1'; }), /hosts\.nodes\.kvm1: give exactly one of ssh .* or netns/);
  refused(hostsDoc((h) => { delete h.nodes.stg.ssh; }), /hosts\.nodes\.stg: give exactly one of ssh/);
  refused(hostsDoc((h) => { delete h.nodes.kvm2.uri; }), /hosts\.nodes\.kvm2\.uri: a hypervisor reached through netns needs its libvirt URI/);
  refused(hostsDoc((h) => { h.dhcp = 'stg'; }), /hosts\.dhcp: stg serves DHCP on every instance segment but has no link on backend/);
  refused(hostsDoc((h) => { h.dhcp = 'nope'; }), /hosts\.dhcp: "nope" is not a node/);
  refused(hostsDoc((h) => { h.nodes.stg.links.storage = '10.5.4.10'; }), /hosts\.nodes\.stg\.links\.storage: 10\.5\.4\.10 is not a host address in storage's 10\.5\.3\.0\/24/);
  refused(hostsDoc((h) => { h.nodes.stg.links.storage = '10.5.3.200'; }), /hosts\.nodes\.stg\.links\.storage: 10\.5\.3\.200 lies in the DHCP pool/);
  refused(hostsDoc((h) => { h.nodes.stg.links.storage = '10.5.3.300'; }), /hosts\.nodes\.stg\.links\.storage: expected an IPv4 address/);
  refused(hostsDoc((h) => { h.nodes.kvm1.ssh = 'kvm1'; }), /hosts\.nodes\.kvm1\.ssh: expected user@address/);
  refused(hostsDoc((h) => { h.nodes.lb.roles = ['storage']; }), /loadbalancers\.front\.host: node "lb" does not have the lb role/);
  refused(withEdit((d) => { delete d.lab; }), /load balancers and shares need the datacenter's topology/);
});

test('hosts: access rules from the hosts\' addresses as from the lab\'s; the edge on the node\'s own interface names', () => {
  const dc = load(hostsDoc((h) => {
    h.segments.outside = { cidr: '203.0.113.0/24' };
    h.nodes.edge = { roles: ['edge'], links: { outside: '203.0.113.5', frontend: '10.5.1.1' }, ssh: 'root@10.5.1.1', interfaces: { outside: 'eth0', frontend: 'eth1' } };
  }).replace(/^name: course$/m, 'name: course\nedge: { host: edge, outside: outside, public_address: 203.0.113.5, forwards: [{ port: 80, to: front }] }'));
  const fw = new FirewallService({} as Context);
  const rules = fw.derive(dc);
  assert.deepEqual(rules.map((r) => r.host).sort(), ['kvm1', 'kvm2', 'lb', 'stg']);
  const nfs = rules.find((r) => r.host === 'stg')!.tables[0]!.chains[0]!.rules.find((r) => r.id === 'nfs-from-instances');
  assert.deepEqual(nfs?.saddr, ['10.5.3.128/25'], 'NFS from the storage segment\'s DHCP pool');
  const edge = fw.deriveEdge(dc)!;
  assert.equal(edge.spec.outside, 'eth0');
  assert.deepEqual(edge.spec.internal, ['10.5.1.0/24']);
});
