import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { getInNetns } from '../helpers/lab.js';
import { dropTable, restoreTable, routeOutsideIn } from '../helpers/reach.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { ImageService } from '../../src/service/images.js';
import { LabService } from '../../src/service/lab.js';
import { COURSE_LAB } from '../../src/model/lab.js';
import { libvirtdUri } from '../../src/drivers/daemons/libvirtd/namespace.js';

/**
 * The datacenter file on "real hosts": `kumo lab up --bare` gives the course's machines and
 * cables only (namespaces, links, libvirtds); the file's `hosts:` describes them with netns
 * shells and the libvirtds' URIs, and apply registers them, defines the networks, runs DHCP on
 * kvm1, and builds the share, two instances, the LB with its WAF and the access rules.
 */
let env: TestEnv;
let file: string;
let group: string;
const HASH = '$6$kumocourse$3eUfgi0nRUHAHEj2kwzfwXnHQQT2E06HU6wzf0eBT6Bd/lntVv6QNTOK2MtFnYDkiL7dJqt/IBWd493qrKYZp1';
const PAGE = '<h1>served from stg through the hosts file</h1>\n';

before(async () => {
  env = await makeTestEnv('dch');
  await new ImageService(env.ctx).buildTiny();
  group = `${env.prefix}-web`;
  const up = await env.cli(['lab', 'up', '--bare', await labFile()]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /bare/);
  assert.match(up.stdout, new RegExp(`kvm1\\s+│?\\s*${env.prefix}-kvm1`), 'the shells a hosts: file needs are printed');
  const node = (name: string) => ({ netns: `${env.prefix}-${name}` });
  const hv = (name: string) => ({ ...node(name), uri: libvirtdUri(join(env.home, 'lab', 'libvirt', name)) });
  const { nodes, segments } = COURSE_LAB;
  const dc = {
    name: env.prefix,
    hosts: {
      segments,
      dhcp: 'kvm1',
      nodes: {
        lb: { ...nodes.lb, ...node('lb') },
        kvm1: { ...nodes.kvm1, ...hv('kvm1') },
        kvm2: { ...nodes.kvm2, ...hv('kvm2') },
        stg: { ...nodes.stg, ...node('stg') },
      },
    },
    images: { tiny: { build: 'tiny' } },
    flavors: { [`${env.prefix}-mini`]: { vcpus: 1, ram_mib: 256, disk_gib: 1 } },
    shares: { site: { networks: ['storage'], files: { 'index.html': PAGE } } },
    // No networks, no hosts: every instance segment both hypervisors link, on the file's hypervisors.
    instances: { [group]: { count: 2, image: 'tiny', flavor: `${env.prefix}-mini`, root_password_hash: HASH, mount: { share: 'site', path: '/var/www' } } },
    loadbalancers: { front: { host: 'lb', frontend: { address: '10.5.1.213', port: 80 }, network: 'backend', instances: group, backend_port: 8080, waf: { enabled: true } } },
    firewall: { allow: [{ host: 'lb', port: 2222, from: 'backend' }] },
  };
  file = join(env.home, 'datacenter.yaml');
  await writeFile(file, stringify(dc));
});

/** The course topology under this run's name, as a lab file for `lab up --bare`. */
async function labFile(): Promise<string> {
  const f = join(env.home, 'lab.yaml');
  await writeFile(f, stringify({ ...COURSE_LAB, name: env.prefix }));
  return f;
}

after(async () => {
  await new LabService(env.ctx).down().catch(() => undefined);
  await env?.cleanup();
});

const fromOutside = (url: string) => getInNetns(`${env.prefix}-internet`, url);

test('apply on a bare lab described under hosts: serves the share through the LB from both instances, behind the firewall', { timeout: 900_000 }, async () => {
  const applied = await env.cli(['apply', file], { timeoutMs: 900_000 });
  assert.equal(applied.code, 0, `${applied.stdout}${applied.stderr}`);
  for (const line of [/\+ create host kvm1/, /\+ create network kvm2:storage/, /\+ create dhcp backend: dnsmasq on kvm1/]) assert.match(applied.stdout, line);
  const members = env.ctx.instances.list().filter((i) => i.name.startsWith(group));
  assert.deepEqual(members.map((i) => i.host).sort(), ['kvm1', 'kvm2'], 'one per hypervisor of the file');
  assert.deepEqual(members[0]!.nics.map((n) => n.network), ['backend', 'storage']);
  for (const name of ['lb', 'kvm1', 'kvm2', 'stg']) assert.deepEqual(env.ctx.hosts.get(name)?.shell, { kind: 'netns', netns: `${env.prefix}-${name}` });
  assert.equal(env.ctx.networkSubnets.get('backend')?.leaseHost, 'kvm1');

  const seen = new Map<string, string>();
  await waitFor('both instances serving the share through the LB', async () => {
    const r = await fromOutside('http://10.5.1.213/');
    if (r.status === 200 && r.backend) seen.set(r.backend, r.body);
    return members.every((m) => seen.get(m.name) === PAGE.trim()) ? true : undefined;
  }, 60_000);
  const ip = (JSON.parse((await env.cli(['instance', 'show', members[0]!.name, '--json'])).stdout) as { nics: { ipv4?: string }[] }).nics[0]!.ipv4;
  assert.match(ip ?? '', /^10\.5\.2\.(1[2-9]\d|2[0-5]\d)$/, 'an address from kvm1\'s DHCP pool');
  assert.notEqual((await fromOutside(`http://${ip}:8080/`)).status, 200, 'an instance\'s 8080 is not reachable from outside');
});

test('with a route from the outside, the rules derived from hosts: are what keep it from an instance', { timeout: 300_000 }, async () => {
  const ns = (node: string) => `${env.prefix}-${node}`;
  const target = env.ctx.instances.list().find((i) => i.name.startsWith(group))!;
  const ip = (JSON.parse((await env.cli(['instance', 'show', target.name, '--json'])).stdout) as { nics: { network: string; ipv4?: string }[] })
    .nics.find((n) => n.network === 'backend')!.ipv4!;
  const instancePage = () => fromOutside(`http://${ip}:8080/`);
  assert.equal((await getInNetns(ns('lb'), `http://${ip}:8080/`)).status, 200, 'positive control: the LB reaches the instance');
  const unroute = await routeOutsideIn(env.prefix);
  try {
    assert.notEqual((await instancePage()).status, 200, 'all rules loaded: the outside does not reach the instance');
    // The LB's rules gone: its forwarding is open, and the hypervisor's bridge rule alone still blocks.
    const lbRules = await dropTable(ns('lb'), 'inet');
    assert.notEqual((await instancePage()).status, 200, `${target.host}'s rule alone keeps the outside from the instance`);
    const hypervisorRules = await dropTable(ns(target.host), 'bridge');
    assert.equal((await instancePage()).status, 200, 'with the rules on the way removed, the same request gets the page');
    await restoreTable(ns(target.host), hypervisorRules);
    assert.notEqual((await instancePage()).status, 200, `${target.host}'s rule loaded again blocks it`);
    await restoreTable(ns('lb'), lbRules);
  } finally {
    await unroute();
  }
  assert.match((await env.cli(['plan', file])).stdout, /no changes/, 'the rules are back as applied');
});

test('a second apply changes nothing; a dead dnsmasq is an update apply repairs', { timeout: 300_000 }, async () => {
  assert.match((await env.cli(['apply', file])).stdout, /no changes/);
  const pid = Number((await readFile(join(env.home, 'site', 'dhcp', 'backend.pid'), 'utf8')).trim());
  process.kill(pid, 'SIGKILL');
  await waitFor('dnsmasq gone', async () => { try { process.kill(pid, 0); return undefined; } catch { return true; } }, 10_000);
  assert.match((await env.cli(['plan', file])).stdout, /~ update dhcp backend: dnsmasq on kvm1 does not run/);
  const fixed = await env.cli(['apply', file]);
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.match((await env.cli(['plan', file])).stdout, /no changes/);
});

test('destroy removes instances, LB, share, networks, DHCP and the host registrations; the bare lab stays until lab down', { timeout: 300_000 }, async () => {
  const r = await env.cli(['destroy', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(env.ctx.instances.list().filter((i) => i.name.startsWith(group)), []);
  assert.equal(env.ctx.loadBalancers.get('front'), undefined);
  assert.equal(env.ctx.shares.get('site'), undefined);
  for (const name of ['lb', 'kvm1', 'kvm2', 'stg']) assert.equal(env.ctx.hosts.get(name), undefined, `${name} unregistered`);
  assert.equal(env.ctx.networkSubnets.get('backend'), undefined);
  const nets = await new NetnsExecutor(`${env.prefix}-kvm1`).run('virsh', ['-c', libvirtdUri(join(env.home, 'lab', 'libvirt', 'kvm1')), 'net-list', '--all', '--name']);
  assert.equal(nets.stdout.trim(), '', 'no libvirt networks left on kvm1');
  assert.equal(new LabService(env.ctx).state()?.bare, true);
  assert.match((await env.cli(['lab', 'down'])).stdout, /lab removed/);
});
