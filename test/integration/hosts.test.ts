import { needsKvmMask } from '../../src/drivers/host/accel-probe.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { pollHttp, removeHypervisor } from '../helpers/lab.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { buildNetworkXml, parseNetworkXml } from '../../src/drivers/libvirt/network-xml.js';
import { daemonPids, restartLibvirtd, startLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';

/**
 * Two hypervisors (this machine's libvirtd as "local", a second libvirtd in its own namespace as
 * "kvm2"), registered in kumo: placement spreads instances, live migration moves one while it
 * serves, a host whose libvirtd dies shows as down without losing its instances, evacuate
 * empties a host.
 */
let env: TestEnv;
let svc: InstanceService;
let stateDir: string;
let lab: NamespacedLibvirtd | undefined;
const kvm2 = () => `${env.prefix}-kvm2`;

async function startLab(): Promise<NamespacedLibvirtd> {
  lab = await startLibvirtd({ name: kvm2(), stateDir, maskKvm: needsKvmMask(await env.ctx.accel()) });
  return lab;
}

before(async () => {
  env = await makeTestEnv('hst');
  stateDir = await mkdtemp(`/tmp/kumo-lab-${env.prefix}-`);
  await new ImageService(env.ctx).buildTiny();
  svc = new InstanceService(env.ctx);
  await startLab();
  // kvm2 plugs guests into the same bridge (a bridge network of the same name): in the lab both
  // hypervisors share one machine's bridges, as real ones share a switch.
  const bridge = parseNetworkXml((await env.ctx.virsh.networkXml(env.network))!).bridge!;
  const dest = new Virsh(lab!.uri);
  await dest.defineNetwork(buildNetworkXml({ name: env.network, mode: 'bridge', bridge }));
  await dest.startNetwork(env.network);
});

after(async () => {
  for (const i of env?.ctx.instances.list() ?? []) {
    await svc.delete(i.name).catch(async () => {
      if (lab) await new Virsh(lab.uri).removeDomain(i.name).catch(() => undefined);
    });
  }
  await removeHypervisor(lab, stateDir);
  await env?.cleanup();
});

test('hosts: add, list with capacity, refusals', async () => {
  const added = await env.cli(['host', 'add', kvm2(), '--uri', lab!.uri, '--migration-address', '127.0.0.1']);
  assert.equal(added.code, 0, added.stderr);
  const hosts = JSON.parse((await env.cli(['host', 'list', '--json'])).stdout) as { name: string; up: boolean; cpus: number; memoryMiB: number }[];
  assert.deepEqual(hosts.map((h) => [h.name, h.up]), [['local', true], [kvm2(), true]]);
  assert.ok(hosts.every((h) => h.cpus > 0 && h.memoryMiB > 0));
  for (const [args, code, says] of [
    [['host', 'add', kvm2(), '--uri', lab!.uri], 4, /already registered/],
    [['host', 'add', 'other', '--uri', lab!.uri], 4, /already registered as host/],
    [['host', 'add', 'ghost', '--uri', `qemu+unix:///system?socket=${stateDir}/nope`], 1, /does not answer/],
    [['host', 'add', 'bad', '--uri', 'not a uri'], 2, /not a libvirt URI/],
    [['host', 'add', 'bad', '--uri', lab!.uri, '--role', 'toaster'], 2, /unknown role/],
    [['host', 'remove', 'nobody'], 3, /not registered/],
  ] as const) {
    const r = await env.cli([...args]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, says);
  }
  assert.equal((JSON.parse((await env.cli(['host', 'list', '--json'])).stdout) as unknown[]).length, 2, 'no half-registered host');
});

test('four instances without --host: two land on each hypervisor, and each answers', async () => {
  for (let i = 1; i <= 4; i++) {
    await svc.create({ name: `${env.prefix}-w${i}`, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network] });
  }
  const list = await svc.list();
  const per = (h: string) => list.filter((i) => i.host === h).length;
  assert.equal(per('local'), 2);
  assert.equal(per(kvm2()), 2);
  assert.equal((await new Virsh(lab!.uri).listDomains()).length, 2);
  for (const i of list) {
    const { ip } = await svc.waitReady(i.name, 180_000);
    assert.match(await (await fetch(`http://${ip}:8080/`)).text(), new RegExp(i.name));
  }
  const hostList = (await env.cli(['host', 'list'])).stdout;
  assert.match(hostList, new RegExp(`${kvm2()}\\s+up\\s+hypervisor\\s+\\d+\\s+[\\d.]+ \\w+\\s+2 vCPU / 2 GiB\\s+2`));
});

test('live migration moves a serving instance and kumo follows; a failed one leaves it where it was', async () => {
  const onKvm2 = (await svc.list()).find((i) => i.host === kvm2())!;
  const { ip } = await svc.waitReady(onKvm2.name);
  const poll = pollHttp(`http://${ip}:8080/`, { intervalMs: 100, expect: new RegExp(onKvm2.name) });
  // A migration libvirt refuses (to the very daemon it runs on, registered under a second
  // name) leaves the instance where it was, running, and kumo's record unchanged.
  const alias = `${env.prefix}-alias`;
  assert.equal((await env.cli(['host', 'add', alias, '--uri', lab!.uri.replace('/run/libvirt-sock', '//run/libvirt-sock')])).code, 0);
  const refused = await env.cli(['instance', 'migrate', onKvm2.name, '--to', alias]);
  assert.notEqual(refused.code, 0);
  assert.equal(env.ctx.instances.get(onKvm2.name)?.host, kvm2());
  assert.equal((await svc.get(onKvm2.name)).state, 'running');
  assert.equal((await env.cli(['host', 'remove', alias])).code, 0);
  // Both daemons open the same disk files (one machine): kumo passes libvirt's --unsafe itself.
  const moved = await env.cli(['instance', 'migrate', onKvm2.name, '--to', 'local']);
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stdout, new RegExp(`migrated ${onKvm2.name} ${kvm2()} -> local in [\\d.]+ s \\(downtime \\d+ ms\\)`));
  await sleep(3000);
  const stats = await poll.stop();
  assert.equal(env.ctx.instances.get(onKvm2.name)?.host, 'local');
  assert.ok(!(await new Virsh(lab!.uri).listDomains()).some((d) => d.name === onKvm2.name), 'gone from kvm2');
  assert.equal((await local.run('virsh', ['-c', 'qemu:///system', 'list', '--name'])).stdout.split('\n').filter((l) => l.trim() === onKvm2.name).length, 1);
  assert.ok(stats.lastOkAt! > Date.now() - 2000, 'still answering after the move');
  assert.ok(stats.ok > 0);
  process.stdout.write(`# longest HTTP gap ${stats.longestGapMs} ms over ${stats.requests} requests\n`);
});

test('a host whose libvirtd dies shows as down, its instances unknown, not gone; back when it returns', async () => {
  const pids = await daemonPids(stateDir);
  process.kill(pids.libvirtd!, 'SIGKILL');
  await waitFor('kvm2 down', async () => ((await svc.list()).some((i) => i.state === 'unknown') ? true : undefined), 20_000);
  const hosts = JSON.parse((await env.cli(['host', 'list', '--json'])).stdout) as { name: string; up: boolean }[];
  assert.equal(hosts.find((h) => h.name === kvm2())?.up, false);
  const list = await svc.list();
  assert.equal(list.length, 4, 'no instance is forgotten');
  assert.ok(list.filter((i) => i.host === kvm2()).every((i) => i.state === 'unknown' && /does not answer/.test(i.drift[0] ?? '')));
  // Placement skips a host that is down.
  await svc.create({ name: `${env.prefix}-w5`, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], start: false });
  assert.equal(env.ctx.instances.get(`${env.prefix}-w5`)?.host, 'local');
  await svc.delete(`${env.prefix}-w5`);
  // The daemon comes back (its guests kept running): kumo sees them running again.
  await restartLibvirtd(stateDir);
  await waitFor('kvm2 back', async () => ((await svc.list()).every((i) => i.state === 'running') ? true : undefined), 30_000);
});

test('evacuate moves everything off a host; then it can be removed', async () => {
  const removeBusy = await env.cli(['host', 'remove', kvm2()]);
  assert.equal(removeBusy.code, 4);
  assert.match(removeBusy.stderr, /still has instances[\s\S]*kumo host evacuate/);
  const r = await env.cli(['host', 'evacuate', kvm2(), '--unsafe']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal((r.stdout.match(/-> local/g) ?? []).length, 1);
  assert.ok((await svc.list()).every((i) => i.host === 'local' && i.state === 'running'));
  assert.equal((await env.cli(['host', 'remove', kvm2()])).code, 0);
});
