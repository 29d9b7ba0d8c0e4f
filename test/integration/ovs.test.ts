import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeSubnet, makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';

/**
 * Open vSwitch, the course's SDN switch: kumo makes the OVS bridge (userspace datapath where
 * the kernel has no OVS module), libvirt plugs the guest in with <virtualport type='openvswitch'/>,
 * and traffic really flows through it. An OVS network has no DHCP of its own, so this test runs
 * a dnsmasq of its own on the bridge, as a site's DHCP server would be.
 */
let env: TestEnv;
let dhcp: ChildProcess | undefined;
const net = { name: '', bridge: '', third: 0 };

before(async () => {
  env = await makeTestEnv('ovs');
  await new ImageService(env.ctx).buildTiny();
  net.name = `${env.prefix}-sdn`;
  net.bridge = `${env.prefix}ov`.slice(0, 15);
  net.third = await freeSubnet();
});
after(async () => {
  dhcp?.kill('SIGKILL');
  for (const i of env?.ctx.instances.list() ?? []) await new InstanceService(env.ctx).delete(i.name).catch(() => undefined);
  await env?.cli(['network', 'delete', net.name]).catch(() => undefined);
  await local.run('ovs-vsctl', ['--if-exists', 'del-br', net.bridge], { allowFailure: true }).catch(() => undefined);
  await env?.cleanup();
});

test('an ovs network: kumo makes the bridge, the guest is a port on it and answers through it', async () => {
  const made = await env.cli(['network', 'create', net.name, '--mode', 'ovs', '--bridge', net.bridge, '--create-bridge']);
  assert.equal(made.code, 0, made.stderr);
  assert.equal((await local.run('ovs-vsctl', ['br-exists', net.bridge], { allowFailure: true })).code, 0);
  assert.match((await env.cli(['network', 'list'])).stdout, new RegExp(`${net.name}\\s+ovs\\s+-\\s+${net.bridge}\\s+active`));
  assert.match((await env.cli(['network', 'show', net.name, '--xml'])).stdout, /<virtualport type='openvswitch'\/>/);

  const prefix = `192.168.${net.third}`;
  await local.run('ip', ['addr', 'add', `${prefix}.1/24`, 'dev', net.bridge]);
  await local.run('ip', ['link', 'set', net.bridge, 'up']);
  const leases = join(env.home, 'ovs.leases');
  dhcp = spawn('dnsmasq', ['--no-daemon', '--conf-file=/dev/null', '--port=0', '--bind-interfaces', `--interface=${net.bridge}`,
    `--dhcp-range=${prefix}.10,${prefix}.50,1h`, `--dhcp-leasefile=${leases}`, '--no-ping', '--no-resolv'], { stdio: 'ignore' });
  // What dnsmasq's events report is kept here and checked while the test waits for a lease.
  let dhcpFailure: string | undefined;
  dhcp.on('error', (e) => { dhcpFailure = `dnsmasq did not start: ${e.message}`; });
  dhcp.on('exit', (code, sig) => { dhcpFailure ??= `dnsmasq exited (${code ?? sig}) while the test needed it`; });

  const name = `${env.prefix}-sw`;
  const svc = new InstanceService(env.ctx);
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [net.name] });
  const mac = (await svc.get(name)).nics[0]!.mac;
  const ports = (await local.run('ovs-vsctl', ['list-ports', net.bridge])).stdout.trim().split('\n');
  const xml = await svc.xml(name);
  const vnet = /<target dev='(vnet\d+)'\/>/.exec(xml)?.[1];
  assert.ok(vnet && ports.includes(vnet), `the guest's ${vnet} is a port of ${net.bridge}: ${ports.join(', ')}`);
  const ip = await waitFor('a DHCP lease over the OVS bridge', async () => {
    assert.equal(dhcpFailure, undefined);
    const line = (existsSync(leases) ? readFileSync(leases, 'utf8') : '').split('\n').find((l) => l.includes(mac));
    return line?.split(' ')[2];
  }, 120_000);
  const page = await waitFor('HTTP through the OVS bridge', async () =>
    fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).catch(() => undefined), 120_000);
  assert.match(page, new RegExp(name));

  await svc.delete(name);
  assert.equal((await env.cli(['network', 'delete', net.name])).code, 0);
  assert.notEqual((await local.run('ovs-vsctl', ['br-exists', net.bridge], { allowFailure: true })).code, 0, 'kumo removes the OVS bridge it made');
});
