import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { datacenterYaml, type FakeHost, fakeHosts, groups, recordInstance, registerImage, SEGMENT, writeNodeFiles } from '../helpers/fake-hypervisors.js';
import { local } from '../../src/exec/exec.js';
import { libvirtdSocket, startLibvirtd, stopLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';

/**
 * `kumo plan` of a datacenter file against several hypervisors (libvirt's test driver behind a
 * private libvirtd of the test's own, one fake node per host, registered by root with `kumo host
 * add --uri test+unix://...`): it lists exactly the changes the hosts' state calls for, and reads
 * them over one protocol connection per host, so no virsh process runs at all. The same plan on
 * the virsh path (KUMO_LIBVIRT_PROTOCOL=0) gives the same changes and does run virsh, which
 * shows that the spy counting virsh processes sees them.
 */
let env: TestEnv | undefined;
let stateDir = '';
let hosts: FakeHost[] = [];
let file = '';
let spyLog = '';
let spyPath = '';

interface Change { action: string; kind: string; name: string; why: string; host?: string }

before(async () => {
  env = await makeTestEnv('plan');
  stateDir = await mkdtemp(`/tmp/kumo-plan-${env.prefix}-`);
  await startLibvirtd({ name: `${env.prefix}-lv`, stateDir, maskKvm: true }); // the test driver runs no QEMU
  hosts = fakeHosts(env.prefix, 5, stateDir, libvirtdSocket(stateDir));
  registerImage(env.ctx, env.home);
  const g = Object.keys(groups(env.prefix, 50)); // one group of 50
  const members = (i: number) => `${g[0]}-${i}`;
  recordInstance(env.ctx, hosts[0]!, members(1), true);
  recordInstance(env.ctx, hosts[1]!, members(2), true);
  recordInstance(env.ctx, hosts[2]!, members(3), false);
  recordInstance(env.ctx, hosts[3]!, members(4), true);
  hosts[3]!.domains.pop(); // its record stays; its domain was removed behind kumo's back
  hosts[4]!.network = false; // the segment's libvirt network is missing on the last host
  await writeNodeFiles(hosts, stateDir);
  for (const h of hosts) {
    await local.run('ip', ['netns', 'add', h.netns]);
    const r = await env.cli(['host', 'add', h.name, '--uri', h.uri, '--netns', h.netns]);
    assert.equal(r.code, 0, `root registers a test-driver host: ${r.stderr}`);
  }
  file = join(stateDir, 'dc.yaml');
  await writeFile(file, datacenterYaml(`${env.prefix}-dc`, hosts, groups(env.prefix, 50)));
  // A virsh that records each run, then does what virsh does.
  spyPath = join(stateDir, 'spy');
  spyLog = join(stateDir, 'virsh-calls.log');
  await local.run('mkdir', ['-p', spyPath]);
  await writeFile(join(spyPath, 'virsh'), `#!/bin/sh\necho "$*" >> ${spyLog}\nexec /usr/bin/virsh "$@"\n`);
  await chmod(join(spyPath, 'virsh'), 0o755);
});

after(async () => {
  if (stateDir) await stopLibvirtd(stateDir).catch(() => undefined);
  await env?.cleanup(); // the netns carry the prefix
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

async function planWithSpy(extraEnv: NodeJS.ProcessEnv): Promise<{ changes: Change[]; virshCalls: string[] }> {
  await writeFile(spyLog, '');
  const r = await env!.cli(['plan', file, '--json'], { env: { PATH: `${spyPath}:${process.env.PATH ?? ''}`, ...extraEnv } });
  assert.equal(r.code, 0, r.stderr);
  const calls = (await readFile(spyLog, 'utf8')).split('\n').filter(Boolean);
  return { changes: JSON.parse(r.stdout) as Change[], virshCalls: calls };
}

const summary = (changes: Change[]) => changes.map((c) => `${c.action} ${c.kind} ${c.name}`).sort();

function expected(): string[] {
  const g = Object.keys(groups(env!.prefix, 50))[0]!;
  const creates = Array.from({ length: 50 }, (_, i) => `${g}-${i + 1}`).filter((n) => ![1, 2, 3, 4].includes(Number(n.split('-').pop())));
  return [
    `create flavor plan-small`,
    `create network ${hosts[4]!.name}:${SEGMENT}`,
    `create dhcp ${SEGMENT}`,
    `start instance ${g}-3`,
    `recreate instance ${g}-4`,
    ...creates.map((n) => `create instance ${n}`),
  ].sort();
}

test('plan against 5 test-driver hypervisors: exactly the changes their state calls for, and not one virsh process', async () => {
  const { changes, virshCalls } = await planWithSpy({});
  assert.deepEqual(summary(changes), expected());
  const g = Object.keys(groups(env!.prefix, 50))[0]!;
  assert.match(changes.find((c) => c.name === `${g}-3`)!.why, /shut off/);
  assert.match(changes.find((c) => c.name === `${g}-4`)!.why, /deleted outside kumo/);
  // Placed dry across the file's hosts only (spread: every host gets some), never on this machine's `local`.
  const placed = changes.filter((c) => c.action === 'create' && c.kind === 'instance').map((c) => c.host);
  assert.ok(placed.every((h) => hosts.some((x) => x.name === h)), `placed on the file's hosts: ${[...new Set(placed)].join(', ')}`);
  assert.equal(new Set(placed).size, hosts.length, 'spread over every host');
  assert.deepEqual(virshCalls, [], 'every read went over the hosts\' protocol connections');
});

test('the same plan on the virsh path gives the same changes, and the spy does see virsh there', async () => {
  const { changes, virshCalls } = await planWithSpy({ KUMO_LIBVIRT_PROTOCOL: '0' });
  assert.deepEqual(summary(changes), expected());
  for (const h of hosts) assert.ok(virshCalls.some((c) => c.includes(h.uri)), `virsh asked ${h.name}`);
});
