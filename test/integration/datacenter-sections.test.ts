import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { processesMentioning } from '../helpers/lab.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { ImageService } from '../../src/service/images.js';
import { LabService } from '../../src/service/lab.js';
import { MonitoringService } from '../../src/service/monitoring.js';
import { COURSE_LAB } from '../../src/model/lab.js';

/**
 * The datacenter file's other sections, on the lab with small tiny-image instances: its own
 * flavor, placement (pack onto one named hypervisor), user_data merged into the seed, a share
 * mounted again after a reboot, a port the file opens in the firewall, and traffic monitoring
 * kept running by apply.
 */
let env: TestEnv;
let file: string;
let group: string;
let flavor: string;
const doc = () => ({
  name: env.prefix,
  lab: { ...COURSE_LAB, name: env.prefix },
  images: { tiny: { build: 'tiny' } },
  shares: { files: { networks: ['storage'], files: { 'index.html': 'from the share\n' } } },
  flavors: { [flavor]: { vcpus: 1, ram_mib: 256, disk_gib: 1 } },
  instances: {
    [group]: {
      count: 2, image: 'tiny', flavor, networks: ['backend', 'storage'], placement: 'pack', hosts: ['kvm2'],
      mount: { share: 'files', path: '/var/www/shared' },
      root_password_hash: '$6$kumocourse$3eUfgi0nRUHAHEj2kwzfwXnHQQT2E06HU6wzf0eBT6Bd/lntVv6QNTOK2MtFnYDkiL7dJqt/IBWd493qrKYZp1',
      user_data: { write_files: [{ path: '/var/www/hello.txt', content: 'hello from user_data\n' }] },
    },
  },
  firewall: { allow: [{ host: 'lb', port: 2222, from: 'backend' }] },
  monitoring: { interval: 2, retention: '1h' },
});
const write = (d: object) => writeFile(file, stringify(d));

before(async () => {
  env = await makeTestEnv('dcs');
  await new ImageService(env.ctx).buildTiny();
  group = `${env.prefix}-app`;
  flavor = `${env.prefix}-mini`;
  file = join(env.home, 'datacenter.yaml');
  await write(doc());
});

after(async () => {
  await new MonitoringService(env.ctx).stopCollector().catch(() => undefined);
  await new LabService(env.ctx).down().catch(() => undefined);
  await env?.cleanup();
});

const inNode = (node: string) => new NetnsExecutor(`${env.prefix}-${node}`);

test('apply makes the file\'s flavor, packs the group onto the named hypervisor, and merges its user_data', { timeout: 600_000 }, async () => {
  const applied = await env.cli(['apply', file]);
  assert.equal(applied.code, 0, `${applied.stdout}${applied.stderr}`);
  assert.match(applied.stdout, new RegExp(`\\+ create flavor ${flavor}: 1 vCPU / 256 MiB / 1 GiB`));
  assert.match(applied.stdout, /\+ create monitoring/);
  const members = env.ctx.instances.list().filter((i) => i.name.startsWith(group));
  assert.deepEqual(members.map((i) => `${i.host}/${i.ramMiB}`), ['kvm2/256', 'kvm2/256'], 'both on kvm2, with the file\'s flavor');
  // write_files from the file's user_data, served by the instance's web server.
  const ip = (JSON.parse((await env.cli(['instance', 'show', members[0]!.name, '--json'])).stdout) as { nics: { ipv4?: string }[] }).nics[0]!.ipv4!;
  const page = await inNode('kvm2').run('curl', ['-s', '--max-time', '3', `http://${ip}:8080/hello.txt`], { allowFailure: true });
  assert.equal(page.stdout, 'hello from user_data\n');
  const shared = await inNode('kvm2').run('curl', ['-s', '--max-time', '3', `http://${ip}:8080/shared/index.html`], { allowFailure: true });
  assert.equal(shared.stdout, 'from the share\n');
});

test('an instance shut down behind kumo\'s back is started by apply, with its share mounted again (fstab)', { timeout: 300_000 }, async () => {
  const name = env.ctx.instances.list().find((i) => i.name.startsWith(group))!.name;
  assert.equal((await env.cli(['instance', 'stop', name])).code, 0);
  assert.match((await env.cli(['plan', file])).stdout, new RegExp(`> start instance ${name}: it is shut off`));
  const applied = await env.cli(['apply', file]);
  assert.equal(applied.code, 0, applied.stderr);
  const ip = (JSON.parse((await env.cli(['instance', 'show', name, '--json'])).stdout) as { nics: { ipv4?: string }[] }).nics[0]!.ipv4!;
  const shared = await inNode('kvm2').run('curl', ['-s', '--max-time', '3', `http://${ip}:8080/shared/index.html`], { allowFailure: true });
  assert.equal(shared.stdout, 'from the share\n', 'mounted on the second boot too');
});

test('the port the file opens on the LB node is reachable from the backend segment only', async () => {
  const listener = spawn('nsenter', [`--net=/run/netns/${env.prefix}-lb`, '--', 'busybox', 'nc', '-ll', '-p', '2222', '-e', 'echo', 'open'], { stdio: 'ignore' });
  try {
    await sleep(500);
    const knock = (node: string, addr: string) => inNode(node).run('busybox', ['nc', '-w', '2', addr, '2222'], { allowFailure: true, input: '', timeoutMs: 10_000 });
    assert.match((await knock('kvm1', '10.5.2.10')).stdout, /open/, 'from the backend segment');
    assert.doesNotMatch((await knock('internet', '10.5.1.213')).stdout, /open/, 'not from outside');
  } finally {
    listener.kill();
  }
});

test('monitoring: apply keeps the collector running and recording; a changed interval or a dead collector is an update', { timeout: 300_000 }, async () => {
  const mon = new MonitoringService(env.ctx);
  const running = await mon.collectorDaemon();
  assert.ok(running, 'the collector runs');
  assert.deepEqual(running.settings, { intervalS: 2, retention: '1h' });
  const name = env.ctx.instances.list().find((i) => i.name.startsWith(group))!.name;
  await waitFor('recorded readings of an instance', async () => {
    const r = await env.cli(['stats', name, '--since', '2m', '--json']);
    return r.code === 0 && (JSON.parse(r.stdout) as { samples: unknown[] }).samples.length >= 2 ? true : (await sleep(1_000), undefined);
  }, 60_000);
  assert.match((await env.cli(['plan', file])).stdout, /no changes/);

  await write({ ...doc(), monitoring: { interval: 3, retention: '1h' } });
  assert.match((await env.cli(['plan', file])).stdout, /~ update monitoring .*runs every 2 s.*should be 3 s/);
  assert.equal((await env.cli(['apply', file])).code, 0);
  const second = await mon.collectorDaemon();
  assert.equal(second?.settings.intervalS, 3);
  assert.notEqual(second.pid, running.pid);

  process.kill(second.pid, 'SIGKILL');
  await waitFor('the collector gone', async () => ((await mon.collectorDaemon()) ? undefined : true), 10_000);
  assert.match((await env.cli(['plan', file])).stdout, /~ update monitoring .*does not run/);
  assert.equal((await env.cli(['apply', file])).code, 0);
  assert.ok(await mon.collectorDaemon(), 'apply restarted it');

  // Out of the file: apply stops it.
  const withoutMonitoring: Partial<ReturnType<typeof doc>> = doc();
  delete withoutMonitoring.monitoring;
  await write(withoutMonitoring);
  const removed = await env.cli(['apply', file]);
  assert.match(removed.stdout, /- delete monitoring/);
  assert.equal(await mon.collectorDaemon(), undefined);
  await write({ ...doc(), monitoring: { interval: 3, retention: '1h' } });
});

test('an impossible placement is refused by plan before anything is made', async () => {
  await write({ ...doc(), instances: { [group]: { ...doc().instances[group], count: 3, hosts: ['kvm2'] } }, flavors: { [flavor]: { vcpus: 64, ram_mib: 256, disk_gib: 1 } } });
  const r = await env.cli(['apply', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`cannot place instance ${group}-\\d of ${env.prefix}: no hypervisor has room for 64 vCPU`));
  assert.equal(env.ctx.flavors.get(flavor)?.vcpus, 1, 'nothing changed: the flavor is as it was');
  assert.equal(env.ctx.instances.list().length, 2);
  await write(doc());
});

test('destroy removes the flavor, stops the collector and takes the lab down', async () => {
  await env.cli(['apply', file]);
  const r = await env.cli(['destroy', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(env.ctx.flavors.get(flavor), undefined);
  assert.equal(await new MonitoringService(env.ctx).collectorDaemon(), undefined);
  assert.equal(new LabService(env.ctx).state(), undefined);
  assert.deepEqual(await processesMentioning(env.home), []);
});
