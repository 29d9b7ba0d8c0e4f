import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { getInNetns, pollHttpInNetns } from '../helpers/lab.js';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { LabService } from '../../src/service/lab.js';
import { COURSE_LAB } from '../../src/model/lab.js';

/**
 * The course's datacenter on a real cloud image (examples/course-datacenter-debian.yaml, one
 * instance to keep TCG boots few): apply builds the Debian image and boots an instance that
 * mounts STG's share with the real cloud-init and serves it through the LB; the instance is then
 * live-migrated under traffic, and snapshotted and reverted on its new hypervisor.
 *
 * Traffic goes only to this run's lab namespaces and its guest.
 */
const EXAMPLE = join(import.meta.dirname, '../../../examples/course-datacenter-debian.yaml');
const SITE = 'http://10.5.1.213/';
let env: TestEnv;
let dir: string;
let file: string;
let key: string;
let vm: string;
let skip: string | undefined;

before(async () => {
  if (process.getuid?.() !== 0) { skip = 'needs root (mmdebstrap, losetup)'; return; }
  if ((await local.run('sh', ['-c', 'command -v mmdebstrap extlinux'], { allowFailure: true })).code !== 0) { skip = 'mmdebstrap/extlinux not installed'; return; }
  env = await makeTestEnv('ddc');
  dir = await mkdtemp(join(tmpdir(), `kumo-${env.prefix}-`));
  key = join(dir, 'id_ed25519');
  await local.run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `kumo-test@${env.prefix}`, '-f', key]);
  const dc = parse(await readFile(EXAMPLE, 'utf8')) as Record<string, unknown> & { instances: Record<string, Record<string, unknown>> };
  dc.name = env.prefix;
  dc.lab = { ...COURSE_LAB, name: env.prefix };
  const group = `${env.prefix}-web`;
  dc.instances = { [group]: { ...dc.instances.web, count: 1, ssh_keys: [(await readFile(`${key}.pub`, 'utf8')).trim()] } };
  (dc.loadbalancers as Record<string, { instances: string }>).front!.instances = group;
  file = join(dir, 'datacenter.yaml');
  await writeFile(file, stringify(dc));
  vm = `${group}-1`;
});

after(async () => {
  if (!env) return;
  await new LabService(env.ctx).down().catch(() => undefined);
  await env.cleanup();
  await rm(dir, { recursive: true, force: true });
});

const inNetns = (node: string) => new NetnsExecutor(`${env.prefix}-${node}`);
const fromOutside = (url: string) => getInNetns(`${env.prefix}-internet`, url, 5);
/** A command in the guest, over ssh from its hypervisor's namespace (which reaches its backend address). */
const inGuest = async (cmd: string, timeoutMs = 120_000) => {
  const inst = env.ctx.instances.get(vm)!;
  const ip = (JSON.parse((await env.cli(['instance', 'show', vm, '--json'])).stdout) as { nics: { network: string; ipv4?: string }[] })
    .nics.find((n) => n.network === 'backend')?.ipv4;
  assert.ok(ip, `${vm} has a backend address`);
  return inNetns(inst.host).run('ssh', ['-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3',
    '-o', 'LogLevel=ERROR', `root@${ip}`, cmd], { allowFailure: true, timeoutMs });
};

test('apply on a real cloud image: Debian instances mount STG\'s share with cloud-init and serve it through the LB', { timeout: 4_800_000 }, async (t) => {
  if (skip) { t.skip(skip); return; }
  const started = Date.now();
  const applied = await env.cli(['apply', file], { timeoutMs: 4_500_000 });
  assert.equal(applied.code, 0, `${applied.stdout}${applied.stderr}`);
  t.diagnostic(`apply (image ${/create image/.test(applied.stdout) ? 'built or taken from the cache' : 'present'}, lab, share, Debian boot under TCG, LB): ${((Date.now() - started) / 1000).toFixed(0)} s`);
  assert.equal(env.ctx.instances.get(vm)?.image, 'debian-12');
  const page = await fromOutside(SITE);
  assert.equal(page.status, 200);
  assert.match(page.body, /served by Debian instances from STG's shared folder/);

  // It is the real cloud-init that did it: the mount, the web server, and no errors.
  const status = await inGuest('cloud-init status --format json; findmnt -n -o FSTYPE,SOURCE /var/www; systemctl is-enabled kumo-web');
  assert.equal(status.code, 0, status.stderr);
  const [json, mount, web] = [status.stdout.slice(0, status.stdout.lastIndexOf('}') + 1), ...status.stdout.slice(status.stdout.lastIndexOf('}') + 1).trim().split('\n')];
  const st = JSON.parse(json!) as { status: string; errors: string[] };
  assert.equal(st.status, 'done');
  assert.deepEqual(st.errors, []);
  assert.match(mount!, /^nfs4\s+10\.5\.3\.10:/, 'the web root is STG\'s share over NFSv4');
  // Every boot mounts it again: cloud-init wrote the file's mounts into fstab, after the network
  // and without holding the boot up. (A reboot of the Debian guest under TCG proved it for 90 s of
  // the suite; the tiny image's test restarts a guest and sees the same fstab mount come back.)
  assert.match((await inGuest("awk '$2 == \"/var/www\"' /etc/fstab")).stdout, /nfs4\s+vers=4\.1,actimeo=1,addr=10\.5\.3\.10,_netdev,nofail/);
  assert.equal(web, 'enabled', 'the web server from the file\'s user_data is a service of every boot');

  // STG's file changes: the Debian instance serves the change (a mount, not a copy).
  const share = JSON.parse((await env.cli(['share', 'show', 'site', '--json'])).stdout) as { path: string };
  await writeFile(join(share.path, 'index.html'), '<h1>edited on stg</h1>\n');
  await waitFor('the edited page through the LB', async () => ((await fromOutside(SITE)).body === '<h1>edited on stg</h1>' ? true : undefined), 30_000);
});

test('a Debian instance live-migrates while the outside polls it through the LB, then is snapshotted and reverted there', { timeout: 900_000 }, async (t) => {
  if (skip) { t.skip(skip); return; }
  const from = env.ctx.instances.get(vm)!.host;
  const to = from === 'kvm1' ? 'kvm2' : 'kvm1';
  const poll = pollHttpInNetns(`${env.prefix}-internet`, SITE, 100, 5_000);
  await sleep(1_000);
  const moved = await env.cli(['instance', 'migrate', vm, '--to', to], { timeoutMs: 600_000 });
  assert.equal(moved.code, 0, moved.stderr);
  await sleep(1_000);
  const stats = await poll.stop();
  t.diagnostic(`${moved.stdout.trim()}; through the LB: ${stats.requests} requests, ${stats.failed} failed, longest gap ${stats.longestGapMs} ms`);
  assert.equal(env.ctx.instances.get(vm)!.host, to);
  assert.ok(stats.requests > 10);
  assert.equal(stats.failed, 0, 'no request through the LB failed');
  assert.equal((await inGuest('findmnt -n -o FSTYPE /var/www')).stdout.trim(), 'nfs4', 'the share stays mounted');

  // A snapshot of the running guest (disk and memory) on its new hypervisor; a file written
  // after it is gone once reverted, and the guest runs on.
  const snap = await env.cli(['snapshot', 'create', vm, 'before']);
  assert.equal(snap.code, 0, snap.stderr);
  assert.equal((await inGuest('echo after > /root/after && sync')).code, 0);
  const list = JSON.parse((await env.cli(['snapshot', 'list', vm, '--json'])).stdout) as { name: string }[];
  assert.deepEqual(list.map((s) => s.name), ['before']);
  const reverted = await env.cli(['snapshot', 'revert', vm, 'before'], { timeoutMs: 600_000 });
  assert.equal(reverted.code, 0, reverted.stderr);
  const after = await waitFor('ssh after the revert', async () => {
    const r = await inGuest('test -e /root/after && echo present || echo gone');
    return r.code === 0 ? r.stdout.trim() : (await sleep(2_000), undefined);
  }, 180_000);
  assert.equal(after, 'gone', 'the revert took the disk back to the snapshot');
  await waitFor('the website through the LB after the revert', async () => ((await fromOutside(SITE)).status === 200 ? true : (await sleep(1_000), undefined)), 120_000);
  assert.equal((await env.cli(['snapshot', 'delete', vm, 'before'])).code, 0);
  assert.deepEqual(JSON.parse((await env.cli(['snapshot', 'list', vm, '--json'])).stdout), []);
});

test('destroy removes the Debian datacenter, the lab included', { timeout: 300_000 }, async (t) => {
  if (skip) { t.skip(skip); return; }
  const r = await env.cli(['destroy', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(env.ctx.instances.list(), []);
  assert.equal(env.ctx.images.get('debian-12'), undefined, 'the image the file built is removed (the build cache keeps it)');
  assert.equal(new LabService(env.ctx).state(), undefined);
});
