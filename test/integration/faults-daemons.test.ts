import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { assertNoDebris, debris } from '../helpers/debris.js';
import { FAULT_ENV } from '../helpers/faults.js';
import { removeHypervisor, startSecondHypervisor } from '../helpers/lab.js';
import { local } from '../../src/exec/exec.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { daemonPids, restartLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';

/**
 * kill -9 of a daemon kumo depends on in the middle of an operation (issue 21): the error names
 * the daemon, where it ran and what to do; nothing half-made stays; once the daemon is back (or
 * kumo started it again, where kumo owns it) the next run converges.
 */
let env: TestEnv;
let stateDir: string;
let lab: NamespacedLibvirtd | undefined;
const kvm2 = () => `${env.prefix}-kvm2`;

before(async () => {
  env = await makeTestEnv('fdm');
  await new ImageService(env.ctx).buildTiny();
  // A second hypervisor the tests may kill (never the machine's libvirtd), on the test's bridge.
  ({ lab, stateDir } = await startSecondHypervisor(env, kvm2()));
  const added = await env.cli(['host', 'add', kvm2(), '--uri', lab.uri]);
  assert.equal(added.code, 0, added.stderr);
});

after(async () => {
  // What a failed test left running: LB daemons and the NFS server (and its nosuid bind) go with their records.
  for (const l of env?.ctx.loadBalancers.list() ?? []) await env.cli(['lb', 'delete', l.name]).catch(() => undefined);
  for (const s of env?.ctx.shares.list() ?? []) await env.cli(['share', 'delete', s.name]).catch(() => undefined);
  for (const i of env?.ctx.instances.list() ?? []) await env.cli(['instance', 'delete', i.name]).catch(() => undefined);
  await removeHypervisor(lab, stateDir);
  await env?.cleanup();
});

/** Pids of processes whose command line matches. */
async function pidsOf(pattern: RegExp): Promise<number[]> {
  return (await local.run('ps', ['-eo', 'pid=,stat=,args='])).stdout.split('\n')
    .map((l) => /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && !m[2]!.startsWith('Z') && pattern.test(m[3]!))
    .map((m) => Number(m[1]));
}

test('libvirtd killed during an instance create on its host: the error names it, the undo waits for it, the retry converges', async () => {
  const dest = new Virsh(lab!.uri);
  const opts = { uris: ['qemu:///system', lab!.uri], ignoreProcess: new RegExp(stateDir) };
  const before = await debris(env, opts);

  const name = `${env.prefix}-l`;
  const args = ['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password', 'x', '--network', env.network, '--host', kvm2()];
  const run = env.cli(args, { env: FAULT_ENV });
  // The trigger: once libvirtd wrote the domain's definition, it is frozen, so kumo's next call
  // (the start) hangs in it; then it dies under that call.
  for (const until = Date.now() + 60_000; !existsSync(join(stateDir, 'etc', 'qemu', `${name}.xml`)); await sleep(5)) {
    assert.ok(Date.now() < until, 'the create never defined its domain');
  }
  const { libvirtd } = await daemonPids(stateDir);
  process.kill(libvirtd!, 'SIGSTOP');
  // kumo's next call now waits on the frozen daemon: a virsh process with KUMO_LIBVIRT_PROTOCOL=0;
  // over the protocol connection, bytes sent within milliseconds of the define's answer (a define
  // whose answer the freeze swallowed ends the same way: libvirtd died under a call).
  const frozenAt = Date.now();
  await waitFor('kumo waiting on the frozen libvirtd',
    async () => ((await pidsOf(/virsh .*libvirt-sock/)).length || Date.now() - frozenAt > 1_000 ? true : undefined), 30_000);
  process.kill(libvirtd!, 'SIGKILL');
  const r = await run;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`libvirtd of host "${kvm2()}" .*(stopped answering|does not answer)`));
  assert.match(r.stderr, new RegExp(`start libvirtd on host "${kvm2()}"`));
  // Nothing of the instance is left but the journaled removal of its domain, which needs libvirt.
  const down = await debris(env, { ...opts, uris: ['qemu:///system'] });
  assert.deepEqual({ ...down, domains: [], networks: [], rows: { ...down.rows, journal: 0 } },
    { ...before, domains: [], networks: [], rows: { ...before.rows, journal: 0 } }, 'half-made while libvirtd is down');
  assert.equal(down.rows.journal, before.rows.journal! + 1, 'the undo that needs libvirt stays journaled');
  const doctor = await env.cli(['doctor']);
  assert.match(doctor.stdout + doctor.stderr, new RegExp(`create instance ${name}`));

  await restartLibvirtd(stateDir);
  const next = await env.cli(['instance', 'list'], { env: FAULT_ENV });
  assert.equal(next.code, 0, next.stderr);
  assertNoDebris(before, await debris(env, opts), 'after libvirtd is back and the next command');
  const again = await env.cli(args, { env: FAULT_ENV });
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await dest.listDomains()).filter((d) => d.name === name).length, 1);
  const del = await env.cli(['instance', 'delete', name]);
  assert.equal(del.code, 0, del.stderr);
  assertNoDebris(before, await debris(env, opts), 'after the retried create and its delete');
});

/** Waits (5 ms polls) until `path` exists, then returns. */
async function whenExists(path: string, what: string): Promise<void> {
  for (const until = Date.now() + 60_000; !existsSync(path); await sleep(5)) assert.ok(Date.now() < until, `never saw ${what}`);
}

const lbState = async (name: string) => {
  const lbs = JSON.parse((await env.cli(['lb', 'list', '--json'])).stdout) as { name: string; running: boolean; wafRunning?: boolean }[];
  const l = lbs.find((x) => x.name === name);
  return { running: l?.running, wafRunning: l?.wafRunning };
};

test('HAProxy and the WAF\'s nginx killed during a sync: the error names them, lb list shows them stopped, lb sync brings them back', async () => {
  await restartLibvirtd(stateDir); // a no-op unless an earlier test left kvm2's daemon dead
  const lbHost = `${env.prefix}-lb`;
  env.ctx.hosts.insert({ name: lbHost, roles: ['lb'], shell: { kind: 'local' }, createdAt: new Date().toISOString() });
  const web = `${env.prefix}-w`;
  await new InstanceService(env.ctx).create({ name: web, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], host: kvm2(), start: false });
  const name = `${env.prefix}-lb`;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const made = await env.cli(['lb', 'create', name, '--host', lbHost, '--frontend', `127.0.0.1:${port}`, '--network', env.network, '--instance', web, '--waf']);
  assert.equal(made.code, 0, made.stderr);
  const opts = { uris: ['qemu:///system', lab!.uri], ignoreProcess: new RegExp(stateDir) };
  const before = await debris(env, opts);
  const dir = join(env.home, 'lb', name);

  for (const [daemon, staged, says] of [
    ['HAProxy', join(dir, 'haproxy', 'haproxy.cfg.next'), /HAProxy on host/],
    ['nginx', join(dir, 'waf', 'nginx.conf.next'), /the WAF's nginx on host/],
  ] as const) {
    // Killed while kumo stages its next config for a reload (`kumo lb sync`).
    const run = env.cli(['lb', 'sync', name]);
    await whenExists(staged, `${daemon}'s staged config`);
    const pid = Number((await readFile(join(dir, daemon === 'HAProxy' ? 'haproxy/haproxy.pid' : 'waf/nginx.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    const r = await run;
    assert.notEqual(r.code, 0, `${daemon} killed during the sync: ${r.stdout}`);
    assert.match(r.stderr, says);
    assert.match(r.stderr, new RegExp(`kumo lb sync ${name}`));
    assert.equal((await lbState(name))[daemon === 'HAProxy' ? 'running' : 'wafRunning'], false, `lb list shows ${daemon} stopped`);
    const again = await env.cli(['lb', 'sync', name]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await lbState(name), { running: true, wafRunning: true });
    assertNoDebris(before, await debris(env, opts), `${daemon} killed during a sync, then synced again`);
  }
  assert.equal((await env.cli(['lb', 'delete', name])).code, 0);
  assert.equal((await env.cli(['instance', 'delete', web])).code, 0);
});

test('nfs-ganesha killed while a share create starts it: the error names it, the other shares are served again, the retry converges', async () => {
  const first = `${env.prefix}a`;
  const made = await env.cli(['share', 'create', first, '--network', env.network]);
  assert.equal(made.code, 0, made.stderr);
  const conf = join(env.home, 'nfs', 'ganesha.conf');
  const pidFile = join(env.home, 'nfs', 'ganesha.pid');
  const name = `${env.prefix}b`;
  // kumo restarts the server with every export: it is killed as soon as the new one wrote its pid.
  const readPid = async () => Number((await readFile(pidFile, 'utf8').catch(() => '')).trim()) || undefined;
  const old = await readPid();
  assert.ok(old, 'the first share is served');
  const run = env.cli(['share', 'create', name, '--network', env.network]);
  let pid: number | undefined;
  for (const until = Date.now() + 60_000; (pid = await readPid()) === undefined || pid === old; await sleep(5)) {
    assert.ok(Date.now() < until, 'never saw the new server\'s pid');
  }
  process.kill(pid, 'SIGKILL');
  const r = await run;
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, /the NFS server \(nfs-ganesha on this machine\) exited while starting \(killed\?\)/);
  assert.match(r.stderr, /run the share command again/);
  // Nothing of the failed share: no record, no export; the first share is served again.
  assert.deepEqual((JSON.parse((await env.cli(['share', 'list', '--json'])).stdout) as { name: string }[]).map((s) => s.name), [first]);
  assert.doesNotMatch(await readFile(conf, 'utf8'), new RegExp(name));
  assert.ok((await pidsOf(new RegExp(`ganesha.nfsd .*${env.home}`))).length === 1, 'the server runs again, once');
  const again = await env.cli(['share', 'create', name, '--network', env.network]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(await readFile(conf, 'utf8'), new RegExp(`Pseudo = "/${name}"`));
  for (const s of [name, first]) assert.equal((await env.cli(['share', 'delete', s])).code, 0);
  assert.equal((await pidsOf(new RegExp(`ganesha.nfsd .*${env.home}`))).length, 0, 'no server without shares');
});

test('libvirt\'s dnsmasq killed under a network: the guest waiting for a lease is told which DHCP server is down; restarting the network converges', async () => {
  await restartLibvirtd(stateDir); // a no-op unless an earlier test left kvm2's daemon dead
  const svc = new InstanceService(env.ctx);
  const pid = Number((await readFile(`/run/libvirt/network/${env.network}.pid`, 'utf8')).trim());
  assert.ok((await pidsOf(new RegExp(`dnsmasq .*/${env.network}\\.conf`))).includes(pid), 'libvirt runs a dnsmasq for the network');
  process.kill(pid, 'SIGKILL');
  const name = `${env.prefix}-d`;
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], host: kvm2() });
  // No lease can come (the server is dead): the wait is waited out whole, so it is short; the
  // diagnosis at its end is what is tested.
  await assert.rejects(svc.waitReady(name, 6_000), (e: Error & { fix?: string }) => {
    assert.match(e.message, new RegExp(`did not get a DHCP lease within 6 s: libvirt's DHCP server \\(dnsmasq\\) for network "${env.network}" on this machine is not running`));
    assert.match(e.fix ?? '', new RegExp(`kumo network stop ${env.network} && kumo network start ${env.network}`));
    return true;
  });
  // The fix as the error gives it.
  await svc.delete(name);
  for (const verb of ['stop', 'start']) {
    const r = await env.cli(['network', verb, env.network]);
    assert.equal(r.code, 0, `network ${verb}: ${r.stderr}`);
  }
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], host: kvm2() });
  assert.ok((await svc.waitReady(name, 120_000)).ip);
  await svc.delete(name);
});
