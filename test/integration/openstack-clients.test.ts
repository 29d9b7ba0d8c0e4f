import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeSubnet, makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';
import { deleteMadeResources } from '../helpers/api.js';
import { OpenStackCli, openStackClientsMissing, runSdk, type SdkResult } from '../helpers/openstack.js';
import { ImageService } from '../../src/service/images.js';
import { UserService } from '../../src/service/users.js';
import { parseDomainXml } from '../../src/drivers/libvirt/domain-xml.js';
import { local } from '../../src/exec/exec.js';
import { sleep } from '../../src/exec/process.js';

/**
 * The proof: Debian's real OpenStack clients (the `openstack` command of
 * python3-openstackclient 6.0 and openstacksdk 0.101), unchanged and offline, drive a real
 * `kumo serve` with real guests. In order: tokens (password; application credential from the
 * clouds.yaml `kumo token create --clouds-yaml` prints), flavors, images (one uploaded), a
 * network and subnet, a server that answers HTTP on the address the API shows, a volume the
 * guest sees come and go, stop/start, delete; then openstacksdk does the core again with the
 * member's credential. One guest at a time. Without the clients the tests skip, which the test
 * command (skip policy) counts as a failure: scripts/bootstrap.sh --test installs them.
 */

const missing = openStackClientsMissing();
let env: TestEnv;
let serve: ServeProcess | undefined;
/** alice, admin of project default, by password; and a member API token through its clouds.yaml. */
let admin: OpenStackCli;
let member: OpenStackCli;
let third: number;
let userData: string;
const PASSWORD = 'pw-alice-openstack';
const n = (label: string) => `${env.prefix}-${label}`;
const [NET, SUB, SRV, VOL, IMG, SDK_SRV, SDK_VOL] = ['osnet', 'ossub', 'os1', 'osvol', 'osimg', 'sdk1', 'sdkvol'];
/** The address the API gave the current guest. */
let ip = '';

/** The guest shows its disks on a CGI page (busybox httpd on 8081), as in volumes.test.ts: no ssh needed. */
const CGI = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
ls /dev | grep '^vd'
`;
// bootcmd runs on every boot (runcmd only on the first), so the page survives a stop and start.
const USER_DATA = `#cloud-config
bootcmd:
  - mkdir -p /var/www/cgi/cgi-bin
  - "httpd -p 8081 -h /var/www/cgi > /dev/null 2>&1"
write_files:
  - path: /var/www/cgi/cgi-bin/disks
    permissions: '0755'
    encoding: b64
    content: ${Buffer.from(CGI).toString('base64')}
`;

before(async () => {
  if (missing) return;
  env = await makeTestEnv('os');
  await new ImageService(env.ctx).buildTiny();
  await new UserService(env.ctx).create('alice', 'default', 'admin', PASSWORD);
  serve = await startServe(env.cliEnv, ['--monitor-interval', '0', '--log-level', 'warn']);
  admin = await OpenStackCli.make({ kind: 'password', authUrl: `${serve.url}/identity`, username: 'alice', password: PASSWORD, project: 'default' });
  // The clouds.yaml kumo prints, as a user would save it: it points at the serve that runs.
  const made = await env.cli(['token', 'create', 'os-member', '--role', 'member', '--clouds-yaml']);
  assert.equal(made.code, 0, made.stderr);
  await writeFile(join(env.home, 'clouds.yaml'), made.stdout, { mode: 0o600 });
  member = admin.as({ kind: 'clouds-yaml', file: join(env.home, 'clouds.yaml'), cloud: 'kumo' });
  userData = join(env.home, 'user-data.yaml');
  await writeFile(userData, USER_DATA);
  third = await freeSubnet();
});

// Pass or fail: the server, the guests and volumes wherever they got, the networks, the env.
after(async () => {
  if (missing) return;
  if (serve) {
    serve.child.kill('SIGTERM');
    await Promise.race([new Promise((r) => serve!.child.once('exit', r)), sleep(15_000)]);
    serve.child.kill('SIGKILL');
  }
  await admin?.close();
  if (!env) return;
  await deleteMadeResources(env.ctx);
  await env.cli(['network', 'delete', n(NET)]).catch(() => undefined);
  await env.cleanup();
});

const opts = { skip: missing };

/** The first IPv4 address in an answer's addresses (the client shows them as a dict or as "net=addr"). */
const ipv4In = (value: unknown) => /\b(\d{1,3}(?:\.\d{1,3}){3})\b/.exec(JSON.stringify(value ?? ''))?.[1];

/** What the guest at `ip` lists under /dev (vda, vdb, ...), from its CGI page. */
async function guestDisks(): Promise<string[]> {
  return waitFor(`the disk page of the guest at ${ip}`, async () => {
    const res = await fetch(`http://${ip}:8081/cgi-bin/disks`, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
    return res?.ok ? (await res.text()).split('\n').filter(Boolean) : undefined;
  }, 90_000);
}

/** The guest answers HTTP on 8080 at the address the API gave it (the tiny image serves there). */
async function answersHttp(what: string): Promise<void> {
  await waitFor(`${what}: http://${ip}:8080/`, async () => {
    const res = await fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
    return res?.ok ? true : undefined;
  }, 180_000);
}

/** Polls `openstack ARGS -f json` until `ok` holds for its answer. */
async function until<T = Record<string, unknown>>(cli: OpenStackCli, args: string[], what: string, ok: (v: T) => boolean, timeoutMs = 120_000): Promise<T> {
  let last: T | undefined;
  try {
    return await waitFor(what, async () => {
      last = await cli.json<T>(args);
      return ok(last) ? last : undefined;
    }, timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last answer of openstack ${args.join(' ')}: ${JSON.stringify(last)}`);
  }
}

/** The domain's disk targets (vda, sda, vdb...) as libvirt runs it. */
async function domainTargets(name: string): Promise<string[]> {
  const xml = await env.ctx.virsh.dumpXml(name, false);
  return xml ? parseDomainXml(xml).disks.map((d) => d.target) : [];
}

test('token issue: by password, and by application credential from the clouds.yaml kumo token create --clouds-yaml printed; a wrong password is refused', opts, async () => {
  const t = await admin.json<{ id: string; expires: string; project_id: string; user_id: string }>(['token', 'issue']);
  assert.equal(t.project_id, 'default');
  assert.equal(t.user_id, 'alice');
  // The client prints strftime's %z ("+0000"): made ISO for Date.parse.
  const expires = Date.parse(t.expires.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
  assert.ok(expires > Date.now() + 50 * 60_000 && expires <= Date.now() + 61 * 60_000, `expires ${t.expires}: in about an hour`);
  const m = await member.json<{ id: string; project_id: string }>(['token', 'issue']);
  assert.equal(m.project_id, 'default');
  assert.notEqual(m.id, t.id);
  const wrong = await admin.as({ ...(admin.creds as Extract<typeof admin.creds, { kind: 'password' }>), password: 'not-it' }).run(['token', 'issue'], { code: 1 });
  assert.match(wrong.stderr, /user name or password is wrong|401/);
});

test('flavor list and show: kumo\'s flavors, ids as strings; image list: tiny, active', opts, async () => {
  const flavors = await admin.json<{ ID: unknown; Name: string; RAM: number; VCPUs: number }[]>(['flavor', 'list']);
  const small = flavors.find((f) => f.Name === 'small');
  assert.ok(small, JSON.stringify(flavors));
  assert.equal(typeof small.ID, 'string');
  assert.deepEqual([small.RAM, small.VCPUs], [1024, 1]);
  const shown = await member.json<{ name: string; ram: number; disk: number }>(['flavor', 'show', 'small']);
  assert.deepEqual([shown.name, shown.ram, shown.disk], ['small', 1024, 10]);
  const images = await admin.json<{ ID: string; Name: string; Status: string }[]>(['image', 'list']);
  assert.deepEqual(images.filter((i) => i.Name === 'tiny').map((i) => i.Status), ['active'], JSON.stringify(images));
});

test('image create --file (a qcow2) --disk-format qcow2: queued, uploaded, active with its size; delete', opts, async () => {
  const file = join(env.home, 'upload.qcow2');
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', file, '64M']);
  const made = await admin.json<{ id: string; status: string }>(['image', 'create', '--file', file, '--disk-format', 'qcow2', '--container-format', 'bare', n(IMG)]);
  const img = await until<{ id: string; status: string; size: number; disk_format: string }>(admin, ['image', 'show', made.id], 'the uploaded image to be active', (i) => i.status === 'active', 60_000);
  assert.equal(img.size, (await stat(file)).size);
  assert.equal(img.disk_format, 'qcow2');
  const listed = await admin.json<{ Name: string; Status: string }[]>(['image', 'list', '--name', n(IMG)]);
  assert.deepEqual(listed.map((i) => [i.Name, i.Status]), [[n(IMG), 'active']]);
  await admin.run(['image', 'delete', n(IMG)]);
  await admin.run(['image', 'show', n(IMG)], { code: 1 });
});

test('network create and subnet create: a kumo network with that range', opts, async () => {
  const net = await admin.json<{ id: string; name: string; status: string }>(['network', 'create', n(NET)]);
  assert.equal(net.name, n(NET));
  const sub = await admin.json<{ id: string; cidr: string; network_id: string; ip_version: number }>(
    ['subnet', 'create', '--network', n(NET), '--subnet-range', `192.168.${third}.0/24`, n(SUB)]);
  assert.deepEqual([sub.cidr, sub.network_id, sub.ip_version], [`192.168.${third}.0/24`, net.id, 4]);
  const nets = await admin.json<{ ID: string; Name: string }[]>(['network', 'list', '--name', n(NET)]);
  assert.deepEqual(nets.map((x) => x.ID), [net.id]);
  const subs = await admin.json<{ ID: string; Subnet: string }[]>(['subnet', 'list', '--network', n(NET)]);
  assert.deepEqual(subs.map((x) => x.Subnet), [`192.168.${third}.0/24`]);
  // No second state: kumo itself has the network.
  const kumoNets = JSON.parse((await env.cli(['network', 'list', '--json'])).stdout) as { name: string }[];
  assert.ok(kumoNets.some((x) => x.name === n(NET)), JSON.stringify(kumoNets));
});

test('server create --image tiny --flavor small --network N --wait: ACTIVE, and the guest answers HTTP on the address the API shows', opts, async () => {
  const s = await admin.json<{ id: string; status: string; addresses: unknown }>(
    ['server', 'create', '--image', 'tiny', '--flavor', 'small', '--network', n(NET), '--user-data', userData, '--wait', n(SRV)], { timeoutMs: 400_000 });
  assert.equal(s.status, 'ACTIVE');
  // The address may trail the state by a lease (the issue: ACTIVE with an address).
  const shown = await until<{ addresses: unknown }>(admin, ['server', 'show', s.id], 'the server\'s address', (v) => ipv4In(v.addresses) !== undefined, 60_000);
  ip = ipv4In(shown.addresses)!;
  assert.match(ip, new RegExp(`^192\\.168\\.${third}\\.`));
  await answersHttp('the new guest');

  // The raw answer, as strict clients read it: version a number, the IP type and MAC, times with Z, the flavor's id a string.
  const token = (await admin.json<{ id: string }>(['token', 'issue'])).id;
  const raw = await fetch(`${serve!.url}/compute/v2.1/servers/${s.id}`, { headers: { 'x-auth-token': token } });
  assert.equal(raw.status, 200);
  const server = (await raw.json() as { server: { addresses: Record<string, Record<string, unknown>[]>; created: string; updated: string; flavor: { id: unknown } } }).server;
  const [a] = server.addresses[n(NET)] ?? [];
  assert.deepEqual([a?.addr, a?.version, a?.['OS-EXT-IPS:type']], [ip, 4, 'fixed'], JSON.stringify(server.addresses));
  assert.match(String(a?.['OS-EXT-IPS-MAC:mac_addr']), /^52:54:00(:[0-9a-f]{2}){3}$/);
  for (const t of [server.created, server.updated]) assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(typeof server.flavor.id, 'string');
});

test('server list and show', opts, async () => {
  const list = await admin.json<{ ID: string; Name: string; Status: string; Networks: unknown }[]>(['server', 'list']);
  const mine = list.find((s) => s.Name === n(SRV));
  assert.ok(mine, JSON.stringify(list));
  assert.equal(mine.Status, 'ACTIVE');
  assert.equal(ipv4In(mine.Networks), ip);
  const show = await member.json<{ id: string; name: string; status: string; flavor: string; image: string }>(['server', 'show', n(SRV)]);
  assert.deepEqual([show.id, show.name, show.status], [mine.ID, n(SRV), 'ACTIVE']);
  assert.match(JSON.stringify(show.flavor), /small/);
  assert.match(JSON.stringify(show.image), /tiny/);
});

test('volume create, server add volume: the guest sees a new disk; server remove volume: it is gone; volume delete', opts, async () => {
  await admin.json(['volume', 'create', '--size', '1', n(VOL)]);
  await until<{ status: string }>(admin, ['volume', 'show', n(VOL)], 'the volume to be available', (v) => v.status === 'available');
  assert.deepEqual(await guestDisks(), ['vda']);
  await admin.run(['server', 'add', 'volume', n(SRV), n(VOL)]);
  const used = await until<{ status: string; attachments: unknown }>(admin, ['volume', 'show', n(VOL)], 'the volume to be in-use', (v) => v.status === 'in-use');
  assert.match(JSON.stringify(used.attachments), /vdb/);
  assert.ok((await domainTargets(n(SRV))).includes('vdb'), 'libvirt runs the guest with the disk');
  await waitFor('vdb in the guest', async () => ((await guestDisks()).includes('vdb') ? true : undefined), 60_000);

  await admin.run(['server', 'remove', 'volume', n(SRV), n(VOL)]);
  await until<{ status: string }>(admin, ['volume', 'show', n(VOL)], 'the volume to be available again', (v) => v.status === 'available');
  await waitFor('vdb gone from the guest', async () => ((await guestDisks()).includes('vdb') ? undefined : true), 60_000);
  await admin.run(['volume', 'delete', n(VOL)]);
  await waitFor('the volume to be gone', async () => ((await admin.run(['volume', 'show', n(VOL)], { code: 1 }).then(() => true, () => undefined))), 60_000);
});

test('server stop: SHUTOFF; server start: ACTIVE, and the guest answers again', opts, async () => {
  await admin.run(['server', 'stop', n(SRV)]);
  await until<{ status: string }>(admin, ['server', 'show', n(SRV)], 'the server to be SHUTOFF', (s) => s.status === 'SHUTOFF', 180_000);
  await admin.run(['server', 'start', n(SRV)]);
  await until<{ status: string }>(admin, ['server', 'show', n(SRV)], 'the server to be ACTIVE', (s) => s.status === 'ACTIVE', 180_000);
  await answersHttp('the guest after its start');
});

test('server delete --wait: the server is gone (404, so the client says there is none) and so is its domain', opts, async () => {
  await admin.run(['server', 'delete', '--wait', n(SRV)], { timeoutMs: 300_000 });
  const gone = await admin.run(['server', 'show', n(SRV)], { code: 1 });
  assert.match(gone.stderr, /No server with a name or ID/);
  assert.ok(!(await env.ctx.virsh.listDomains()).some((d) => d.name === n(SRV)), 'no domain left');
});

test('openstacksdk with the member\'s application credential: create_server + wait_for_server, list, a volume attached and detached, delete', opts, async () => {
  const step = (results: SdkResult[], name: string) => results.find((r) => r.do === name)!;
  const first = await runSdk(member, [
    { do: 'token' }, { do: 'flavors' }, { do: 'images' },
    { do: 'create_server', name: n(SDK_SRV), image: 'tiny', flavor: 'small', network: n(NET), user_data: USER_DATA, wait: 300 },
    { do: 'list_servers' },
  ], 400_000);
  assert.equal(step(first, 'token').project_id, 'default');
  assert.ok((step(first, 'flavors').flavors as { name: string }[]).some((f) => f.name === 'small'));
  assert.ok((step(first, 'images').images as { name: string; status: string }[]).some((i) => i.name === 'tiny' && i.status === 'active'));
  const created = step(first, 'create_server');
  assert.equal(created.status, 'ACTIVE');
  assert.ok((step(first, 'list_servers').servers as { name: string }[]).some((s) => s.name === n(SDK_SRV)));
  const addr = await waitFor('the SDK server\'s address', async () => {
    const [shown] = await runSdk(member, [{ do: 'show_server', name: n(SDK_SRV) }]);
    return ipv4In(shown!.addresses);
  }, 60_000);
  ip = addr;
  await answersHttp('the SDK\'s guest');

  const attached = await runSdk(member, [
    { do: 'create_volume', name: n(SDK_VOL), size: 1, wait: 120 },
    { do: 'attach_volume', server: n(SDK_SRV), volume: n(SDK_VOL), wait: 120 },
  ]);
  assert.equal((step(attached, 'attach_volume').volume as { status: string }).status, 'in-use');
  await waitFor('vdb in the SDK\'s guest', async () => ((await guestDisks()).includes('vdb') ? true : undefined), 60_000);

  const ended = await runSdk(member, [
    { do: 'detach_volume', server: n(SDK_SRV), volume: n(SDK_VOL), wait: 120 },
    { do: 'delete_volume', name: n(SDK_VOL), wait: 120 },
    { do: 'delete_server', name: n(SDK_SRV), wait: 300 },
  ], 600_000);
  assert.equal(step(ended, 'detach_volume').status, 'available');
  assert.ok(!(await env.ctx.virsh.listDomains()).some((d) => d.name === n(SDK_SRV)), 'no domain left');
});

test('subnet delete and network delete: gone from the API and from kumo', opts, async () => {
  await admin.run(['subnet', 'delete', n(SUB)]);
  await admin.run(['network', 'delete', n(NET)]);
  await admin.run(['network', 'show', n(NET)], { code: 1 });
  const kumoNets = JSON.parse((await env.cli(['network', 'list', '--json'])).stdout) as { name: string }[];
  assert.ok(!kumoNets.some((x) => x.name === n(NET)));
});
