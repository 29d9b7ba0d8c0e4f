import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { openContext, type Context } from '../../src/service/context.js';
import { ProjectService } from '../../src/service/projects.js';
import { UserService } from '../../src/service/users.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { osUuid } from '../../src/api/openstack/common.js';
import { parseNetworkXml } from '../../src/drivers/libvirt/network-xml.js';
import { local, type Executor } from '../../src/exec/exec.js';
import type { InstanceRecord } from '../../src/store/instances.js';

/**
 * Neutron v2.0 (/networking) and Cinder v3 (/volume) of the OpenStack face: shapes, roles, errors
 * and bad input. libvirt is an in-memory stand-in for virsh's network commands (nothing is made on
 * the machine); volumes are real qcow2 files under a temporary KUMO_HOME.
 */

/** What virsh would keep: each network's XML and whether it runs. */
const nets = new Map<string, { xml: string; active: boolean; autostart: boolean }>();
const leases: string[] = [];
/** A network whose next net-start fails (once), as a libvirtd that gives up half-way would. */
let failNextStart: string | undefined;
const fakeVirsh: Executor = {
  description: 'virsh stand-in', onThisMachine: true,
  async run(command, args, options) {
    if (command !== 'virsh') return local.run(command, args, options);
    const [verb, ...rest] = args.slice(3); // -q -c URI
    const name = rest[0] ?? '';
    const ok = (stdout = '') => ({ code: 0, stderr: '', stdout });
    switch (verb) {
      case 'net-list':
        return ok([...nets].map(([n, s]) => ` ${n}  ${s.active ? 'active' : 'inactive'}  ${s.autostart ? 'yes' : 'no'}  yes`).join('\n'));
      case 'net-dumpxml': return ok(nets.get(name)?.xml ?? '');
      case 'net-define': {
        const xml = await readFile(name, 'utf8');
        nets.set(parseNetworkXml(xml).name!, { xml, active: false, autostart: false });
        return ok();
      }
      case 'net-start':
        if (failNextStart === name) {
          failNextStart = undefined;
          throw new Error(`error: Failed to start network ${name}`);
        }
        nets.get(name)!.active = true; return ok();
      case 'net-destroy': nets.get(name)!.active = false; return ok();
      case 'net-undefine': nets.delete(name); return ok();
      case 'net-autostart': nets.get(name)!.autostart = !rest.includes('--disable'); return ok();
      case 'net-dhcp-leases': return ok(leases.join('\n'));
      default: return ok();
    }
  },
  async open() { throw new Error('not used'); },
};

let home: string;
let ctx: Context;
let app: ApiServer;
const tokens: Record<string, string> = {};
const PASSWORD = 'correct horse battery';
const CIDR = '10.251.77.0/24';

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-neutron-cinder-');
  ctx = openContext({ home, libvirtUri: 'test:///default', exec: fakeVirsh, libvirtProtocol: false });
  new ProjectService(ctx).create('p1');
  // The instances of these tests are records only (their image too): ports and attachments read them.
  ctx.images.upsert({ name: 'tiny', os: 'stand-in', disk: `${home}/tiny.qcow2`, format: 'qcow2', virtualSizeBytes: 1 << 30, source: 'test', createdAt: new Date().toISOString() });
  const users = new UserService(ctx);
  await users.create('mia', 'p1', 'member', PASSWORD);
  await users.create('rex', 'p1', 'reader', PASSWORD);
  await users.create('ada', 'default', 'admin', PASSWORD);
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web`, watchDomains: false });
  await app.ready();
  for (const [name, project] of [['mia', 'p1'], ['rex', 'p1'], ['ada', 'default']] as const) {
    const r = await app.inject({
      method: 'POST', url: '/identity/v3/auth/tokens',
      payload: { auth: { identity: { methods: ['password'], password: { user: { name, domain: { name: 'Default' }, password: PASSWORD } } }, scope: { project: { name: project } } } },
    });
    tokens[name] = String(r.headers['x-subject-token']);
  }
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const call = (who: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
  app.inject({ method, url, headers: { 'x-auth-token': tokens[who]!, host: 'cloud.test:8080' }, ...(payload ? { payload } : {}) });

test('Neutron discovery: /networking and /networking/ list v2.0 on the client\'s address; /v2.0 its resources', async () => {
  for (const url of ['/networking', '/networking/']) {
    const r = await app.inject({ url, headers: { host: 'cloud.test:8080' } });
    assert.equal(r.statusCode, 200, url);
    assert.deepEqual(r.json(), { versions: [{ id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: 'http://cloud.test:8080/networking/v2.0/' }] }] });
  }
  const res = await app.inject({ url: '/networking/v2.0/' });
  assert.ok(res.json().resources.some((r: { collection: string }) => r.collection === 'networks'));
  const anon = await app.inject({ url: '/networking/v2.0/networks' });
  assert.equal(anon.statusCode, 401);
  assert.equal(anon.json().NeutronError.type, 'Unauthorized');
});

test('network create (bare), subnet create (its range), show, list with filters, one subnet only, delete both', async () => {
  const made = await call('mia', 'POST', '/networking/v2.0/networks', { network: { name: 'osnv-a', admin_state_up: true } });
  assert.equal(made.statusCode, 201, made.body);
  const n = made.json().network;
  assert.equal(n.id, osUuid('network', 'osnv-a'));
  assert.deepEqual(n.subnets, []);
  assert.equal(n.status, 'ACTIVE');
  assert.equal(n.project_id, 'p1');
  assert.equal(n.shared, false);
  assert.equal(n['router:external'], false);
  assert.equal(n.mtu, 1500);
  assert.equal(n['provider:network_type'], 'local');
  assert.equal(parseNetworkXml(nets.get('osnv-a')!.xml).address, undefined, 'a Neutron network has no range before its subnet');

  const sub = await call('mia', 'POST', '/networking/v2.0/subnets', { subnet: { network_id: n.id, cidr: CIDR, ip_version: 4, name: 'osnv-a-sub' } });
  assert.equal(sub.statusCode, 201, sub.body);
  const s = sub.json().subnet;
  assert.deepEqual({ id: s.id, network_id: s.network_id, cidr: s.cidr, ip_version: s.ip_version, gateway_ip: s.gateway_ip, enable_dhcp: s.enable_dhcp, project_id: s.project_id }, {
    id: osUuid('subnet', 'osnv-a'), network_id: n.id, cidr: CIDR, ip_version: 4, gateway_ip: '10.251.77.1', enable_dhcp: true, project_id: 'p1',
  });
  assert.deepEqual(s.allocation_pools, [{ start: '10.251.77.2', end: '10.251.77.254' }]);
  assert.deepEqual(s.dns_nameservers, []);
  assert.equal(parseNetworkXml(nets.get('osnv-a')!.xml).address, '10.251.77.1');

  const shown = await call('rex', 'GET', `/networking/v2.0/networks/${n.id}`);
  assert.deepEqual(shown.json().network.subnets, [s.id]);
  const byName = await call('rex', 'GET', '/networking/v2.0/networks?name=osnv-a&router%3Aexternal=false&fields=id&unknown=x');
  assert.deepEqual(byName.json().networks.map((x: { id: string }) => x.id), [n.id]);
  const none = await call('rex', 'GET', '/networking/v2.0/networks?name=nosuch');
  assert.deepEqual(none.json().networks, []);
  const subs = await call('rex', 'GET', `/networking/v2.0/subnets?network_id=${n.id}`);
  assert.deepEqual(subs.json().subnets.map((x: { id: string }) => x.id), [s.id]);
  assert.equal((await call('rex', 'GET', `/networking/v2.0/subnets/${s.id}`)).json().subnet.cidr, CIDR);
  // The subnet keeps the name it was made with: clients find it by that name (subnet show/delete NAME).
  assert.equal(s.name, 'osnv-a-sub');
  const subByName = await call('rex', 'GET', '/networking/v2.0/subnets?name=osnv-a-sub');
  assert.deepEqual(subByName.json().subnets.map((x: { id: string }) => x.id), [s.id]);

  const second = await call('mia', 'POST', '/networking/v2.0/subnets', { subnet: { network_id: n.id, cidr: '10.251.78.0/24', ip_version: 4 } });
  assert.equal(second.statusCode, 400);
  assert.match(second.json().NeutronError.message, /has its subnet already \(10\.251\.77\.0\/24\): a kumo network has one range/);

  assert.equal((await call('mia', 'DELETE', `/networking/v2.0/subnets/${s.id}`)).statusCode, 204);
  assert.deepEqual((await call('rex', 'GET', `/networking/v2.0/networks/${n.id}`)).json().network.subnets, []);
  assert.deepEqual((await call('rex', 'GET', '/networking/v2.0/subnets?name=osnv-a-sub')).json().subnets, [], 'its name went with it');
  assert.equal((await call('mia', 'DELETE', `/networking/v2.0/networks/${n.id}`)).statusCode, 204);
  assert.equal(nets.has('osnv-a'), false);
  const gone = await call('rex', 'GET', `/networking/v2.0/networks/${n.id}`);
  assert.equal(gone.statusCode, 404);
  assert.equal(gone.json().NeutronError.type, 'NetworkNotFound');
  assert.match(gone.json().NeutronError.message, /^Network \S+ could not be found\./);
});

test('Neutron roles: a reader may list but not create or delete; another project sees nothing of p1\'s', async () => {
  const denied = await call('rex', 'POST', '/networking/v2.0/networks', { network: { name: 'osnv-r' } });
  assert.equal(denied.statusCode, 403);
  assert.equal(denied.json().NeutronError.type, 'PolicyNotAuthorized');
  assert.match(denied.json().NeutronError.message, /needs the role member/);
  assert.equal(nets.has('osnv-r'), false);
  await call('mia', 'POST', '/networking/v2.0/networks', { network: { name: 'osnv-p' } });
  const id = osUuid('network', 'osnv-p');
  assert.equal((await call('rex', 'DELETE', `/networking/v2.0/networks/${id}`)).statusCode, 403);
  const admins = await call('ada', 'GET', '/networking/v2.0/networks?name=osnv-p');
  assert.deepEqual(admins.json().networks, [], 'the admin\'s token acts in project default');
  assert.equal((await call('mia', 'DELETE', `/networking/v2.0/networks/${id}`)).statusCode, 204);
});

test('Neutron bad input: 400 naming the problem and the fix, nothing made', async () => {
  const cases: [string, object, RegExp][] = [
    ['/networking/v2.0/networks', { network: { name: 'osnv-s', shared: true } }, /belongs to the project.*leave out --share/],
    ['/networking/v2.0/networks', { network: { name: 'osnv-e', 'router:external': true } }, /no routers.*leave out --external/],
    ['/networking/v2.0/networks', { network: { name: 'osnv-v', 'provider:network_type': 'vxlan' } }, /type "local" only, not "vxlan"/],
    ['/networking/v2.0/networks', { network: {} }, /invalid request: body\.network\.name/],
    ['/networking/v2.0/networks', { network: { name: 'bad name!' } }, /network/],
  ];
  for (const [url, payload, says] of cases) {
    const r = await call('mia', 'POST', url, payload);
    assert.equal(r.statusCode, 400, `${JSON.stringify(payload)}: ${r.body}`);
    assert.equal(r.json().NeutronError.type, 'BadRequest');
    assert.match(r.json().NeutronError.message, says);
  }
  assert.deepEqual([...nets.keys()].filter((k) => k.startsWith('osnv-')), []);
  await call('mia', 'POST', '/networking/v2.0/networks', { network: { name: 'osnv-b' } });
  const id = osUuid('network', 'osnv-b');
  const subnetCases: [object, RegExp][] = [
    [{ network_id: id, cidr: '10.251.79.0/24', ip_version: 6 }, /IPv4 only/],
    [{ network_id: id, cidr: '10.251.79.0/24', gateway_ip: null }, /without a gateway/],
    [{ network_id: id, cidr: '10.251.79.0/24', dns_nameservers: ['8.8.8.8'] }, /leave out --dns-nameserver/],
    [{ network_id: id, cidr: 'not-a-cidr' }, /CIDR|cidr/],
    [{ network_id: id, cidr: '10.251.79.0/24', allocation_pools: [{ start: '10.251.80.2', end: '10.251.80.9' }] }, /not inside 10\.251\.79\.0\/24/],
  ];
  for (const [subnet, says] of subnetCases) {
    const r = await call('mia', 'POST', '/networking/v2.0/subnets', { subnet });
    assert.equal(r.statusCode, 400, `${JSON.stringify(subnet)}: ${r.body}`);
    assert.match(r.json().NeutronError.message, says);
  }
  assert.equal(parseNetworkXml(nets.get('osnv-b')!.xml).address, undefined, 'no refused subnet changed the network');
  const unknownNet = await call('mia', 'POST', '/networking/v2.0/subnets', { subnet: { network_id: osUuid('network', 'nosuch'), cidr: '10.251.79.0/24' } });
  assert.equal(unknownNet.statusCode, 404);
  assert.equal(unknownNet.json().NeutronError.type, 'NetworkNotFound');
  // A pool and no DHCP: the range without DHCP.
  const r = await call('mia', 'POST', '/networking/v2.0/subnets', { subnet: { network_id: id, cidr: '10.251.79.0/24', enable_dhcp: false, gateway_ip: '10.251.79.254' } });
  assert.equal(r.statusCode, 201, r.body);
  assert.equal(r.json().subnet.enable_dhcp, false);
  assert.equal(r.json().subnet.gateway_ip, '10.251.79.254');
  assert.deepEqual(r.json().subnet.allocation_pools, []);
  await call('mia', 'DELETE', `/networking/v2.0/networks/${id}`);
});

test('a subnet create that fails half-way puts the network back as it was (the journaled restore)', async () => {
  await call('mia', 'POST', '/networking/v2.0/networks', { network: { name: 'osnv-f' } });
  const id = osUuid('network', 'osnv-f');
  const before = nets.get('osnv-f')!.xml;
  failNextStart = 'osnv-f';
  const r = await call('mia', 'POST', '/networking/v2.0/subnets', { subnet: { network_id: id, cidr: '10.251.82.0/24' } });
  assert.ok(r.statusCode >= 500, `${r.statusCode} ${r.body}`);
  assert.ok(r.json().NeutronError, r.body);
  assert.equal(nets.get('osnv-f')?.xml, before, 'the old definition is back');
  assert.equal(nets.get('osnv-f')?.active, true);
  assert.equal(nets.get('osnv-f')?.autostart, true, 'a Neutron network starts with the host');
  assert.deepEqual((await call('rex', 'GET', `/networking/v2.0/networks/${id}`)).json().network.subnets, []);
  assert.deepEqual(ctx.journal.pending(), [], 'nothing is left to undo');
  assert.equal((await call('mia', 'DELETE', `/networking/v2.0/networks/${id}`)).statusCode, 204);
});

const record = (name: string, uuid: string, network: string, mac: string): InstanceRecord => ({
  name, uuid, host: 'local', image: 'tiny', vcpus: 1, ramMiB: 64, diskGiB: 1, networks: [network],
  nics: [{ mac, network }], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project: 'p1',
});

test('ports: each NIC of the project\'s instances, with its lease; a used network refuses subnet changes and delete (409)', async () => {
  await call('mia', 'POST', '/networking/v2.0/networks', { network: { name: 'osnv-u' } });
  const netId = osUuid('network', 'osnv-u');
  await call('mia', 'POST', '/networking/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.251.81.0/24' } });
  const uuid = '6f1e8f4c-2b1a-4c55-9d1e-0b5a1f2e3d4c';
  const mac = '52:54:00:aa:bb:01';
  ctx.instances.insert(record('osnv-vm', uuid, 'osnv-u', mac));
  leases.push(` 2026-12-07 10:00:00   ${mac}   ipv4   10.251.81.23/24   osnv-vm   -`);
  try {
    const ports = await call('rex', 'GET', `/networking/v2.0/ports?device_id=${uuid}`);
    assert.equal(ports.statusCode, 200, ports.body);
    const [p] = ports.json().ports;
    assert.equal(p.id, osUuid('port', mac));
    assert.equal(p.network_id, netId);
    assert.equal(p.mac_address, mac);
    assert.equal(p.device_owner, 'compute:nova');
    assert.deepEqual(p.fixed_ips, [{ subnet_id: osUuid('subnet', 'osnv-u'), ip_address: '10.251.81.23' }]);
    assert.equal((await call('rex', 'GET', `/networking/v2.0/ports/${p.id}`)).json().port.device_id, uuid);
    assert.deepEqual((await call('rex', 'GET', '/networking/v2.0/ports?mac_address=52:54:00:00:00:00')).json().ports, []);
    const missing = await call('rex', 'GET', `/networking/v2.0/ports/${osUuid('port', 'x')}`);
    assert.equal(missing.json().NeutronError.type, 'PortNotFound');
    const del = await call('mia', 'DELETE', `/networking/v2.0/subnets/${osUuid('subnet', 'osnv-u')}`);
    assert.equal(del.statusCode, 409);
    assert.equal(del.json().NeutronError.type, 'InUse');
    assert.match(del.json().NeutronError.message, /used by osnv-vm/);
    assert.equal((await call('mia', 'DELETE', `/networking/v2.0/networks/${netId}`)).statusCode, 409);
    const groups = await call('rex', 'GET', '/networking/v2.0/security-groups');
    assert.equal(groups.json().security_groups[0].name, 'default');
  } finally {
    ctx.instances.delete('osnv-vm');
    leases.length = 0;
  }
  assert.equal((await call('mia', 'DELETE', `/networking/v2.0/networks/${netId}`)).statusCode, 204);
});

const V = (project = 'p1') => `/volume/v3/${project}/volumes`;

test('Cinder discovery: /volume and /volume/ give v3.0 with its microversions; /volume/v3 the same entry', async () => {
  for (const url of ['/volume', '/volume/', '/volume/v3', '/volume/v3/']) {
    const r = await app.inject({ url, headers: { host: 'cloud.test:8080' } });
    assert.ok(r.statusCode === 200 || r.statusCode === 300, `${url}: ${r.statusCode}`);
    const [v] = r.json().versions;
    assert.equal(v.id, 'v3.0');
    assert.equal(v.status, 'CURRENT');
    assert.equal(v.min_version, '3.0');
    assert.match(v.version, /^3\.\d+$/);
    assert.ok(v.links.some((l: { rel: string; href: string }) => l.rel === 'self' && l.href === 'http://cloud.test:8080/volume/v3/'));
  }
});

test('volumes: create 202, show, detail with Cinder\'s times, summary list, filters and paging, delete 202 then 404', async () => {
  const made = await call('mia', 'POST', V(), { volume: { size: 1, name: 'osnv-v1', description: null, snapshot_id: null, imageRef: null, volume_type: null, metadata: {} } });
  assert.equal(made.statusCode, 202, made.body);
  const v = made.json().volume;
  assert.equal(v.id, osUuid('volume', 'osnv-v1'));
  assert.equal(v.size, 1);
  assert.equal(v.status, 'available');
  assert.equal(v.bootable, 'false');
  assert.equal(v.encrypted, false);
  assert.equal(v.multiattach, false);
  assert.equal(v.availability_zone, 'nova');
  assert.deepEqual(v.attachments, []);
  assert.match(v.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/, 'Cinder\'s times carry no zone');
  assert.equal(v['os-vol-tenant-attr:tenant_id'], 'p1');
  assert.equal(made.headers['openstack-api-version'], 'volume 3.0');
  const noName = await call('mia', 'POST', V(), { volume: { size: '1' } });
  assert.equal(noName.statusCode, 202, noName.body);
  assert.match(noName.json().volume.name, /^volume-[0-9a-f]{8}$/);

  assert.equal((await call('rex', 'GET', `${V()}/${v.id}`)).json().volume.name, 'osnv-v1');
  const summary = (await call('rex', 'GET', V())).json().volumes;
  assert.deepEqual(Object.keys(summary[0]).sort(), ['id', 'links', 'name']);
  const named = (await call('rex', 'GET', `${V()}/detail?name=osnv-v1`)).json().volumes;
  assert.deepEqual(named.map((x: { id: string }) => x.id), [v.id]);
  assert.deepEqual((await call('rex', 'GET', `${V()}/detail?status=in-use`)).json().volumes, []);
  const first = (await call('rex', 'GET', `${V()}/detail?limit=1`)).json();
  assert.equal(first.volumes.length, 1);
  assert.equal(first.volumes_links[0].rel, 'next');
  const rest = (await call('rex', 'GET', `${V()}/detail?limit=1&marker=${first.volumes[0].id}`)).json();
  assert.equal(rest.volumes.length, 1);
  assert.notEqual(rest.volumes[0].id, first.volumes[0].id);
  assert.equal(rest.volumes_links, undefined);

  // An attachment kumo records shows as in-use, with the instance's UUID; delete is refused meanwhile.
  const uuid = '0c7a5f2e-1d3b-4e6f-8a9b-7c6d5e4f3a2b';
  ctx.instances.insert(record('osnv-vm2', uuid, 'default', '52:54:00:aa:bb:02'));
  assert.ok(ctx.volumes.claim('osnv-v1', 'osnv-vm2', 'vdb'));
  try {
    const used = (await call('rex', 'GET', `${V()}/${v.id}`)).json().volume;
    assert.equal(used.status, 'in-use');
    assert.equal(used.attachments.length, 1);
    assert.equal(used.attachments[0].server_id, uuid);
    assert.equal(used.attachments[0].volume_id, v.id);
    assert.equal(used.attachments[0].device, '/dev/vdb');
    const refused = await call('mia', 'DELETE', `${V()}/${v.id}`);
    assert.equal(refused.statusCode, 409);
    assert.match(refused.json().conflictingRequest.message, /attached to instance "osnv-vm2"/);
  } finally {
    ctx.volumes.release('osnv-v1');
    ctx.instances.delete('osnv-vm2');
  }
  assert.equal((await call('mia', 'DELETE', `${V()}/${v.id}`)).statusCode, 202);
  const gone = await call('rex', 'GET', `${V()}/${v.id}`);
  assert.equal(gone.statusCode, 404);
  assert.equal(gone.json().itemNotFound.code, 404);
  await call('mia', 'DELETE', `${V()}/${noName.json().volume.id}`);
});

test('Cinder roles, projects and bad input: reader 403, another project 404, refused keys named, nothing made', async () => {
  const denied = await call('rex', 'POST', V(), { volume: { size: 1, name: 'osnv-r' } });
  assert.equal(denied.statusCode, 403);
  assert.equal(denied.json().forbidden.code, 403);
  const other = await call('mia', 'GET', `${V('default')}/detail`);
  assert.equal(other.statusCode, 404);
  assert.match(other.json().itemNotFound.message, /no project "default"/);
  const cases: [object, RegExp][] = [
    [{ size: 0, name: 'osnv-z' }, /size must be a whole number of GiB/],
    [{ size: 'big', name: 'osnv-z' }, /invalid request: body\.volume\.size/],
    [{ size: 1, name: 'osnv-z', snapshot_id: osUuid('snapshot', 'x') }, /empty volumes only, not from a snapshot/],
    [{ size: 1, name: 'osnv-z', volume_type: 'ssd' }, /one volume type, __DEFAULT__, not "ssd"/],
    [{ size: 1, name: 'osnv-z', multiattach: true }, /one instance at a time/],
    [{ size: 1, name: 'osnv-z', description: 'data' }, /no description/],
  ];
  for (const [volume, says] of cases) {
    const r = await call('mia', 'POST', V(), { volume });
    assert.equal(r.statusCode, 400, `${JSON.stringify(volume)}: ${r.body}`);
    assert.match(r.json().badRequest.message, says);
  }
  assert.equal(ctx.volumes.get('osnv-z'), undefined);
  // An admin may name another project in the URL, as kumo's ?project=.
  const admin = await call('ada', 'GET', `${V('p1')}/detail`);
  assert.equal(admin.statusCode, 200, admin.body);
  const types = await call('rex', 'GET', '/volume/v3/p1/types');
  assert.equal(types.json().volume_types[0].name, '__DEFAULT__');
  assert.equal((await call('rex', 'GET', '/volume/v3/p1/types/default')).json().volume_type.name, '__DEFAULT__');
});
