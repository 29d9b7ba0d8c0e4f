import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeSubnet, makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';
import { DhcpServer } from '../../src/drivers/daemons/dnsmasq.js';

let env: TestEnv;
let nat: string;
let natThird: number;
let isoThird: number;
const outside = { ns: '', hostIf: '', nsIf: '', hostIp: '198.51.100.1', nsIp: '198.51.100.2' };
let outsideServer: ChildProcess | undefined;
let bridgeDhcp: DhcpServer | undefined;

const ip = (...args: string[]) => local.run('ip', args);

before(async () => {
  env = await makeTestEnv('net');
  await new ImageService(env.ctx).buildTiny();
  nat = `${env.prefix}-nat`;
  natThird = await freeSubnet();
  const created = await env.cli(['network', 'create', nat, '--mode', 'nat', '--cidr', `192.168.${natThird}.0/24`]);
  assert.equal(created.code, 0, created.stderr);
  isoThird = Number(/192\.168\.(\d+)\./.exec((await env.cli(['network', 'show', env.network])).stdout)![1]);
  // "The internet": a namespace this test makes, with a web server, routed from the host.
  outside.ns = `${env.prefix}-out`;
  outside.hostIf = `${env.prefix}o0`.slice(0, 15);
  outside.nsIf = `${env.prefix}o1`.slice(0, 15);
  await ip('netns', 'add', outside.ns);
  await ip('link', 'add', outside.hostIf, 'type', 'veth', 'peer', 'name', outside.nsIf);
  await ip('link', 'set', outside.nsIf, 'netns', outside.ns);
  await ip('addr', 'add', `${outside.hostIp}/30`, 'dev', outside.hostIf);
  await ip('link', 'set', outside.hostIf, 'up');
  await ip('-n', outside.ns, 'addr', 'add', `${outside.nsIp}/30`, 'dev', outside.nsIf);
  await ip('-n', outside.ns, 'link', 'set', outside.nsIf, 'up');
  await ip('-n', outside.ns, 'link', 'set', 'lo', 'up');
  const www = join(env.home, 'outside-www');
  await mkdir(www);
  await writeFile(join(www, 'index.html'), 'hello from outside\n');
  outsideServer = spawn('ip', ['netns', 'exec', outside.ns, 'busybox', 'httpd', '-f', '-p', '80', '-h', www], { stdio: 'ignore' });
});

after(async () => {
  outsideServer?.kill('SIGKILL');
  await bridgeDhcp?.stop().catch(() => undefined);
  if (outside.ns) {
    await local.run('ip', ['link', 'del', outside.hostIf], { allowFailure: true });
    await local.run('ip', ['netns', 'del', outside.ns], { allowFailure: true });
  }
  for (const i of env?.ctx.instances.list() ?? []) await new InstanceService(env.ctx).delete(i.name).catch(() => undefined);
  await env?.cli(['network', 'delete', nat]).catch(() => undefined);
  await env?.cleanup();
});

/** A guest-side probe: runs on port 8081 and tries to reach a target through one NIC. */
const probeUserData = `#cloud-config
write_files:
  - path: /var/www/cgi/cgi-bin/probe
    permissions: "0755"
    content: |
      #!/bin/sh
      printf 'Content-Type: text/plain\\r\\n\\r\\n'
      dev=$(echo "$QUERY_STRING" | sed -n 's/.*dev=\\([a-z0-9]*\\).*/\\1/p')
      gw=$(echo "$QUERY_STRING" | sed -n 's/.*gw=\\([0-9.]*\\).*/\\1/p')
      target=$(echo "$QUERY_STRING" | sed -n 's/.*target=\\([0-9.]*\\).*/\\1/p')
      ip route replace "$target/32" via "$gw" dev "$dev" 2>&1
      # busybox wget crashes in the tiny guest (static glibc); nc speaks HTTP well enough
      if printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 4 "$target" 80 | grep -q hello; then echo 'hello from outside: REACHED'; else echo BLOCKED; fi
      ip route del "$target/32" 2>/dev/null
runcmd:
  - [busybox, httpd, -p, "8081", -h, /var/www/cgi]
`;

async function probe(guestIp: string, dev: string, gw: string): Promise<string> {
  const res = await fetch(`http://${guestIp}:8081/cgi-bin/probe?dev=${dev}&gw=${gw}&target=${outside.nsIp}`, { signal: AbortSignal.timeout(15_000) });
  return res.text();
}

test('a guest on a NAT and an isolated network: a lease on both, the outside only through NAT', async () => {
  const name = `${env.prefix}-two`;
  const svc = new InstanceService(env.ctx);
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [nat, env.network], userData: probeUserData });
  await svc.waitReady(name, 180_000);
  const inst = await waitFor('leases on both NICs', async () => {
    const i = await svc.get(name);
    return i.nics.every((n) => n.ipv4) ? i : undefined;
  }, 60_000);
  const [natNic, isoNic] = inst.nics;
  assert.equal(natNic?.network, nat);
  assert.equal(isoNic?.network, env.network);
  assert.match(natNic!.ipv4!, new RegExp(`^192\\.168\\.${natThird}\\.`));
  assert.match(isoNic!.ipv4!, new RegExp(`^192\\.168\\.${isoThird}\\.`));
  // The host reaches the guest on both networks.
  for (const nic of inst.nics) {
    const page = await (await fetch(`http://${nic.ipv4}:8080/`, { signal: AbortSignal.timeout(5000) })).text();
    assert.match(page, new RegExp(name));
  }
  const shown = await env.cli(['instance', 'show', name]);
  assert.match(shown.stdout, new RegExp(`nic\\s+${natNic!.mac}\\s+${nat}\\s+${natNic!.ipv4!.replace(/\./g, '\\.')}`));
  // The guest reaches "the internet" through the NAT NIC, and not through the isolated one.
  await waitFor('the guest probe', async () => (await fetch(`http://${natNic!.ipv4}:8081/`).then(() => true).catch(() => undefined)), 30_000);
  assert.match(await probe(natNic!.ipv4!, 'eth0', `192.168.${natThird}.1`), /hello from outside[\s\S]*REACHED/);
  assert.match(await probe(natNic!.ipv4!, 'eth1', `192.168.${isoThird}.1`), /BLOCKED/);

  // A network an instance uses cannot be deleted or stopped.
  const del = await env.cli(['network', 'delete', nat]);
  assert.equal(del.code, 4);
  assert.match(del.stderr, new RegExp(`used by ${name}`));
  await svc.delete(name);
});

test('the course\'s testnat.xml: define, start, autostart, list, dumpxml, delete', async () => {
  const third = await freeSubnet();
  const name = `${env.prefix}-nat1`;
  const bridge = `${env.prefix}b10`.slice(0, 15);
  const file = join(env.home, 'testnat.xml');
  await writeFile(file, `<network>
  <name>${name}</name>
  <forward mode='nat'>
    <nat>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='${bridge}' stp='on' delay='0'/>
  <ip address='192.168.${third}.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.${third}.2' end='192.168.${third}.254'/>
    </dhcp>
  </ip>
</network>
`);
  assert.match((await env.cli(['network', 'define', file])).stdout, new RegExp(`Network ${name} defined from .*testnat.xml`));
  assert.match((await env.cli(['network', 'list'])).stdout, new RegExp(`${name}\\s+nat\\s+192\\.168\\.${third}\\.0/24\\s+${bridge}\\s+inactive\\s+no\\s+yes`));
  assert.match((await env.cli(['network', 'start', name])).stdout, new RegExp(`Network ${name} started`));
  assert.match((await env.cli(['network', 'autostart', name])).stdout, new RegExp(`Network ${name} marked as autostarted`));
  assert.match((await env.cli(['network', 'list'])).stdout, new RegExp(`${name}\\s+nat\\s+192\\.168\\.${third}\\.0/24\\s+${bridge}\\s+active\\s+yes\\s+yes`));
  const virshList = (await local.run('virsh', ['-c', 'qemu:///system', 'net-list', '--all'])).stdout;
  assert.match(virshList, new RegExp(`${name}\\s+active\\s+yes\\s+yes`));
  const addr = (await local.run('ip', ['-4', 'addr', 'show', bridge])).stdout;
  assert.match(addr, new RegExp(`inet 192\\.168\\.${third}\\.1/24`));
  const xml = (await env.cli(['network', 'show', name, '--xml'])).stdout;
  assert.match(xml, /<forward mode='nat'>/);
  assert.match(xml, new RegExp(`<range start='192.168.${third}.2' end='192.168.${third}.254'/>`));
  assert.equal((await env.cli(['network', 'stop', name])).code, 0);
  assert.equal((await env.cli(['network', 'delete', name])).code, 0);
  assert.doesNotMatch((await local.run('virsh', ['-c', 'qemu:///system', 'net-list', '--all'])).stdout, new RegExp(name));
});

test('create with derived defaults, and a host bridge kumo makes and removes, with a guest on it answering the bridge\'s side', async () => {
  const third = await freeSubnet();
  const name = `${env.prefix}-iso`;
  assert.equal((await env.cli(['network', 'create', name, '--mode', 'isolated', '--cidr', `192.168.${third}.0/24`, '--autostart'])).code, 0);
  const shown = JSON.parse((await env.cli(['network', 'show', name, '--json'])).stdout) as { gateway: string; dhcp: { start: string; end: string }; bridge: string; autostart: boolean };
  assert.equal(shown.gateway, `192.168.${third}.1`);
  assert.deepEqual(shown.dhcp, { start: `192.168.${third}.2`, end: `192.168.${third}.254` });
  assert.match(shown.bridge, /^virbr\d+$/);
  assert.equal(shown.autostart, true);
  assert.equal((await env.cli(['network', 'delete', name])).code, 0);
  assert.equal((await local.run('ip', ['link', 'show', shown.bridge], { allowFailure: true })).code !== 0, true, 'bridge removed');

  const br = `${env.prefix}br0`.slice(0, 15);
  const bname = `${env.prefix}-br`;
  const made = await env.cli(['network', 'create', bname, '--mode', 'bridge', '--bridge', br, '--create-bridge']);
  assert.equal(made.code, 0, made.stderr);
  assert.match((await local.run('ip', ['-d', 'link', 'show', br])).stdout, /bridge/);
  assert.match((await env.cli(['network', 'list'])).stdout, new RegExp(`${bname}\\s+bridge\\s+-\\s+${br}\\s+active`));

  // A packet crosses it: a guest on the bridge answers the bridge's side (this machine, with an
  // address on it). A host bridge has no DHCP of its own: a site's DHCP server stands in.
  const lan = `192.168.${await freeSubnet()}`;
  await local.run('ip', ['addr', 'add', `${lan}.1/24`, 'dev', br]);
  await local.run('ip', ['link', 'set', br, 'up']);
  bridgeDhcp = new DhcpServer({ link: br, rangeStart: `${lan}.10`, rangeEnd: `${lan}.50`, dir: env.home, name: 'bridge-dhcp' });
  await bridgeDhcp.ensure();
  const guest = `${env.prefix}-onbr`;
  const svc = new InstanceService(env.ctx);
  await svc.create({ name: guest, image: 'tiny', flavor: 'small', password: 'x', networks: [bname] });
  const mac = (await svc.get(guest)).nics[0]!.mac.toLowerCase();
  const guestIp = await waitFor('a DHCP lease on the host bridge', async () =>
    (await bridgeDhcp!.leases()).find((l) => l.mac === mac)?.ipv4, 120_000);
  assert.match(guestIp, new RegExp(`^${lan.replace(/\./g, '\\.')}\\.`));
  const page = await waitFor('HTTP from the bridge\'s side', async () =>
    (await local.run('curl', ['-sf', '--max-time', '3', '--interface', br, `http://${guestIp}:8080/`], { allowFailure: true })).stdout || undefined, 180_000);
  assert.match(page, new RegExp(guest), 'the guest answered over the host bridge');
  await svc.delete(guest);
  await bridgeDhcp.stop();
  bridgeDhcp = undefined;

  assert.equal((await env.cli(['network', 'delete', bname])).code, 0);
  assert.notEqual((await local.run('ip', ['link', 'show', br], { allowFailure: true })).code, 0, 'kumo removes the bridge it made');
});

test('bad network input is refused with a clear message and leaves no libvirt object or bridge', async () => {
  const n = `${env.prefix}-bad`;
  const free = `192.168.${await freeSubnet()}`;
  const envBridge = JSON.parse((await env.cli(['network', 'show', env.network, '--json'])).stdout).bridge as string;
  const badXml = join(env.home, 'bad.xml');
  await writeFile(badXml, '<network><name>x</name><forward mode="teleport"/></network>');
  const dupXml = join(env.home, 'dup.xml');
  await writeFile(dupXml, `<network><name>${env.network}</name></network>`);
  const cases: [string[], number, RegExp][] = [
    [['network', 'create', n, '--mode', 'nat'], 2, /needs --cidr/],
    [['network', 'create', n, '--mode', 'warp', '--cidr', '10.1.0.0/24'], 2, /Allowed choices are nat, isolated, bridge, ovs/],
    [['network', 'create', n, '--mode', 'nat', '--cidr', '192.168.300.0/24'], 2, /not an IPv4 address/],
    [['network', 'create', n, '--mode', 'nat', '--cidr', `192.168.${isoThird}.0/24`], 4, new RegExp(`overlaps network "${env.network}"`)],
    [['network', 'create', n, '--mode', 'nat', '--cidr', `192.168.${isoThird}.128/25`], 4, /overlaps/],
    [['network', 'create', n, '--mode', 'isolated', '--cidr', `${free}.0/24`, '--bridge', envBridge], 4, new RegExp(`bridge "${envBridge}" is already used`)],
    [['network', 'create', n, '--mode', 'isolated', '--cidr', `${free}.0/24`, '--bridge', 'lo'], 4, /interface named "lo" already exists/],
    [['network', 'create', n, '--mode', 'isolated', '--cidr', `${free}.0/24`, '--bridge', 'a-very-long-bridge-name'], 2, /not a valid interface name/],
    [['network', 'create', n, '--mode', 'nat', '--cidr', `${free}.0/24`, '--dhcp', '.10-.2'], 2, /ends before it starts/],
    [['network', 'create', n, '--mode', 'nat', '--cidr', `${free}.0/24`, '--dhcp', '10.9.9.2-10.9.9.9'], 2, /not inside 192\.168\.\d+\.0\/24/],
    [['network', 'create', n, '--mode', 'nat', '--cidr', `${free}.0/24`, '--gateway', '.50', '--dhcp', '.2-.100'], 2, /inside the DHCP range/],
    [['network', 'create', n, '--mode', 'nat', '--cidr', `${free}.0/24`, '--gateway', '192.168.9.1'], 2, /not a host address of 192\.168\.\d+\.0\/24/],
    [['network', 'create', n, '--mode', 'nat', '--cidr', `${free}.0/24`, '--create-bridge'], 2, /--create-bridge is for --mode bridge or ovs/],
    [['network', 'create', n, '--mode', 'bridge'], 2, /needs --bridge NAME/],
    [['network', 'create', n, '--mode', 'bridge', '--bridge', 'lo'], 2, /"lo" is not a bridge/],
    [['network', 'create', n, '--mode', 'bridge', '--bridge', `${env.prefix}zz`], 2, /does not exist[\s\S]*--create-bridge/],
    [['network', 'create', n, '--mode', 'bridge', '--bridge', envBridge, '--cidr', '10.0.0.0/24'], 2, /--cidr does not apply/],
    [['network', 'create', env.network, '--mode', 'isolated', '--cidr', `${free}.0/24`], 4, /already exists/],
    [['network', 'create', '../x', '--mode', 'isolated', '--cidr', `${free}.0/24`], 2, /network name "\.\.\/x" is not valid/],
    [['network', 'define', badXml], 2, /does not follow libvirt's schema/],
    [['network', 'define', dupXml], 4, /already exists/],
    [['network', 'define', join(env.home, 'none.xml')], 2, /does not exist/],
    [['network', 'delete', `${env.prefix}-none`], 3, /does not exist/],
    [['network', 'start', `${env.prefix}-none`], 3, /does not exist/],
  ];
  const ourLinks = async () => (JSON.parse((await local.run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[])
    .map((l) => l.ifname).filter((l) => l.startsWith(env.prefix) || /^virbr\d+$/.test(l)).sort();
  const linksBefore = await ourLinks();
  for (const [args, code, says] of cases) {
    const r = await env.cli(args);
    assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, says, args.join(' '));
    const nets = (await local.run('virsh', ['-c', 'qemu:///system', 'net-list', '--all', '--name'])).stdout;
    assert.ok(!nets.includes(n) && !/^x$/m.test(nets), `${args.join(' ')}: left a network`);
  }
  assert.deepEqual(await ourLinks(), linksBefore, 'no interface left');
});
