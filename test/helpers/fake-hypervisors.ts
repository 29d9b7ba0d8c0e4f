import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Context } from '../../src/service/context.js';

/**
 * Many hypervisors on one machine for planning: one private libvirtd serves libvirt's test
 * driver, one node file per host (`test+unix:///DIR/HOST.xml?socket=SOCK`: the daemon keeps a
 * fake node per connection, with its CPUs, memory, domains and networks). Used by
 * test/integration/plan-scale.test.ts and bench/plan-scale.ts.
 */

export interface FakeDomain { name: string; uuid: string; running: boolean }
export interface FakeHost {
  name: string;
  uri: string;
  netns: string;
  address: string;
  /** Domains the node file defines (instances "already there"). */
  domains: FakeDomain[];
  /** Whether the node has the `backend` bridge network (every host should). */
  network: boolean;
}

/** Each fake node: 64 CPUs and 256 GiB, so placement has room for every instance. */
const CPUS = 64;
const MEMORY_KIB = 256 * 1024 * 1024;
export const SEGMENT = 'backend';
export const IMAGE = 'tiny';
export const FLAVOR = 'plan-small';
/** The flavor the file declares (what each instance is given). */
export const FLAVOR_SPEC = { vcpus: 1, ram_mib: 512, disk_gib: 2 };
/** test123, as in examples/ (a group needs a way to log in). */
const PASSWORD_HASH = '$6$kumocourse$3eUfgi0nRUHAHEj2kwzfwXnHQQT2E06HU6wzf0eBT6Bd/lntVv6QNTOK2MtFnYDkiL7dJqt/IBWd493qrKYZp1';

export function nodeXml(h: FakeHost): string {
  const domains = h.domains.map((d) => `  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>` +
    `<name>${d.name}</name><uuid>${d.uuid}</uuid><memory>${FLAVOR_SPEC.ram_mib * 1024}</memory><os><type>hvm</type></os>` +
    `${d.running ? '' : '<test:runstate>5</test:runstate>'}</domain>`).join('\n');
  const network = h.network ? `  <network><name>${SEGMENT}</name><bridge name='br-${SEGMENT}'/><forward mode='bridge'/></network>` : '';
  return `<node>\n  <cpu><nodes>1</nodes><sockets>1</sockets><cores>${CPUS}</cores><threads>1</threads><active>${CPUS}</active><mhz>2000</mhz><model>kumo-fake</model></cpu>\n` +
    `  <memory>${MEMORY_KIB}</memory>\n${domains}\n${network}\n</node>\n`;
}

/** `count` hosts PREFIX-h01…, their node files written under `dir` (no domains yet: add them, then write again). */
export function fakeHosts(prefix: string, count: number, dir: string, socket: string): FakeHost[] {
  return Array.from({ length: count }, (_, i) => {
    const name = `${prefix}-h${String(i + 1).padStart(2, '0')}`;
    return { name, uri: `test+unix://${join(dir, `${name}.xml`)}?socket=${socket}`, netns: name, address: `10.77.0.${10 + i}`, domains: [], network: true };
  });
}

export async function writeNodeFiles(hosts: FakeHost[], dir: string): Promise<void> {
  await Promise.all(hosts.map((h) => writeFile(join(dir, `${h.name}.xml`), nodeXml(h))));
}

/** The instance groups: GROUP-1…GROUP-n, at most 50 per group (the file allows 64). */
export function groups(prefix: string, instances: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0, left = instances; left > 0; i++, left -= 50) out[`${prefix}-g${i + 1}`] = Math.min(50, left);
  return out;
}

/** The datacenter file: the hosts (reached through their netns), one instance segment, the flavor, the groups. */
export function datacenterYaml(name: string, hosts: FakeHost[], groupCounts: Record<string, number>): string {
  return stringify({
    name,
    hosts: {
      segments: { [SEGMENT]: { cidr: '10.77.0.0/24', instances: true } },
      dhcp: hosts[0]!.name,
      nodes: Object.fromEntries(hosts.map((h) => [h.name, { roles: ['hypervisor'], links: { [SEGMENT]: h.address }, netns: h.netns, uri: h.uri }])),
    },
    flavors: { [FLAVOR]: FLAVOR_SPEC },
    instances: Object.fromEntries(Object.entries(groupCounts).map(([g, count]) => [g, { count, image: IMAGE, flavor: FLAVOR, root_password_hash: PASSWORD_HASH }])),
  });
}

/** The image the groups use, as kumo would have it registered (no file behind it: plan reads the record only). */
export function registerImage(ctx: Context, home: string): void {
  ctx.images.upsert({ name: IMAGE, os: 'stand-in', disk: join(home, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 26, source: 'test', createdAt: new Date().toISOString() });
}

/** An instance kumo made earlier on `host`: its record, and its domain in the host's node file (write the files after). */
export function recordInstance(ctx: Context, host: FakeHost, name: string, running: boolean, project = 'default'): FakeDomain {
  const d = { name, uuid: randomUUID(), running };
  host.domains.push(d);
  ctx.instances.insert({
    name, uuid: d.uuid, host: host.name, image: IMAGE, vcpus: FLAVOR_SPEC.vcpus, ramMiB: FLAVOR_SPEC.ram_mib, diskGiB: FLAVOR_SPEC.disk_gib,
    networks: [SEGMENT], nics: [], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project,
  });
  return d;
}
