import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { parseDomainXml } from '../../src/drivers/libvirt/domain-xml.js';

/**
 * Volumes against real libvirt and real TCG guests: hot-plug, detach, re-attach to another
 * guest, live growth, attach to a stopped guest, instance root disk growth, and bad input.
 * The guests show what they see through a CGI page (busybox httpd on 8081) with a fixed set
 * of commands: no ssh needed.
 */
let env: TestEnv;
let svc: InstanceService;
let A: string;
let B: string;
let V1: string;
let V2: string;
const ip = new Map<string, string>();

/** The guest side: a fixed command set; only a vd[b-z] device name comes from the query. */
const CGI = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
dev=\${QUERY_STRING#*=}
case "$dev" in vd[b-z]) ;; *) dev=none ;; esac
mkdir -p /mnt/v
case "$QUERY_STRING" in
  ls) ls /dev | grep '^vd' ;;
  df) df -k / | tail -n 1 ;;
  size=*) cat /sys/block/$dev/size ;;
  mkfs=*) mke2fs /dev/$dev > /dev/null 2>&1 && echo ok ;;
  write=*) mount -t ext2 /dev/$dev /mnt/v && echo "written on $(hostname)" > /mnt/v/marker && sync && umount /mnt/v && echo ok ;;
  read=*) mount -t ext2 -o ro /dev/$dev /mnt/v && cat /mnt/v/marker; umount /mnt/v ;;
esac
`;

// bootcmd runs on every boot (runcmd only on the first), so the page survives a restart.
const userData = `#cloud-config
bootcmd:
  - mkdir -p /var/www/cgi/cgi-bin
  - "httpd -p 8081 -h /var/www/cgi > /dev/null 2>&1"
write_files:
  - path: /var/www/cgi/cgi-bin/run
    permissions: '0755'
    encoding: b64
    content: ${Buffer.from(CGI).toString('base64')}
`;

async function guest(name: string, query: string): Promise<string> {
  const url = `http://${ip.get(name)}:8081/cgi-bin/run?${query}`;
  return waitFor(url, async () => {
    const res = await fetch(url, { signal: AbortSignal.timeout(20_000) }).catch(() => undefined);
    return res?.ok ? (await res.text()).trim() : undefined;
  }, 60_000);
}

const guestDisks = async (name: string) => (await guest(name, 'ls')).split('\n').filter(Boolean);

/** Runs the CLI and checks its exit code; the error text is part of the failure message. */
async function kumo(args: string[], code = 0): Promise<{ stdout: string; stderr: string }> {
  const r = await env.cli(args);
  assert.equal(r.code, code, `kumo ${args.join(' ')} exited ${r.code}, expected ${code}\n${r.stdout}${r.stderr}`);
  return r;
}

/** The disks of a domain, running and defined: [target, file] pairs. */
async function domainDisks(name: string): Promise<string[]> {
  const out: string[] = [];
  for (const inactive of [false, true]) {
    const xml = await env.ctx.virsh.dumpXml(name, inactive);
    for (const d of xml ? parseDomainXml(xml).disks : []) out.push(`${inactive ? 'config' : 'live'} ${d.target} ${d.file}`);
  }
  return out.sort();
}

const volumeFile = (name: string) => join(env.home, 'volumes', `${name}.qcow2`);

async function ready(name: string): Promise<void> {
  ip.set(name, (await svc.waitReady(name, 180_000)).ip);
}

before(async () => {
  env = await makeTestEnv('vol');
  await new ImageService(env.ctx).buildTiny();
  svc = new InstanceService(env.ctx);
  A = `${env.prefix}-a`;
  B = `${env.prefix}-b`;
  V1 = `${env.prefix}-v1`;
  V2 = `${env.prefix}-v2`;
  for (const name of [A, B]) {
    await svc.create({ name, image: 'tiny', vcpus: 1, ramMiB: 512, diskGiB: 1, password: 'pw', networks: [env.network], userData });
  }
  await Promise.all([ready(A), ready(B)]);
});
after(async () => env?.cleanup());

test('a volume hot-plugged into a running guest appears as /dev/vdX; its data survives detach and re-attach elsewhere', async () => {
  assert.match((await kumo(['volume', 'create', V1, '--size', '1'])).stdout, /created volume .* 1 GiB/);
  assert.ok(existsSync(volumeFile(V1)));
  assert.deepEqual(await guestDisks(A), ['vda']);

  const att = await kumo(['volume', 'attach', V1, A]);
  assert.match(att.stdout, /as vdb \(hot-plugged/);
  await waitFor('vdb in guest A', async () => ((await guestDisks(A)).includes('vdb') ? true : undefined), 30_000);
  assert.ok((await domainDisks(A)).includes(`live vdb ${volumeFile(V1)}`));
  assert.ok((await domainDisks(A)).includes(`config vdb ${volumeFile(V1)}`));
  const [listed] = JSON.parse((await kumo(['volume', 'list', '--json'])).stdout) as { name: string; instance?: string; device?: string }[];
  assert.deepEqual([listed?.name, listed?.instance, listed?.device], [V1, A, 'vdb']);
  assert.match((await kumo(['volume', 'list'])).stdout, new RegExp(`Name\\s+Size\\s+Instance\\s+Device[^]*${V1}\\s+1 GiB\\s+${A}\\s+vdb`));

  assert.equal(await guest(A, 'mkfs=vdb'), 'ok');
  assert.equal(await guest(A, 'write=vdb'), 'ok');
  assert.equal(await guest(A, 'read=vdb'), `written on ${A}`);

  assert.match((await kumo(['volume', 'detach', V1])).stdout, new RegExp(`detached volume "${V1}" from ${A}`));
  assert.ok(!(await domainDisks(A)).some((d) => d.includes(volumeFile(V1))), 'the disk is gone from the domain, live and defined');
  await waitFor('vdb gone from guest A', async () => ((await guestDisks(A)).includes('vdb') ? undefined : true), 30_000);
  assert.match((await kumo(['volume', 'show', V1])).stdout, /instance\s+\(not attached\)/);

  assert.match((await kumo(['volume', 'attach', V1, B])).stdout, /as vdb/);
  await waitFor('vdb in guest B', async () => ((await guestDisks(B)).includes('vdb') ? true : undefined), 30_000);
  assert.equal(await guest(B, 'read=vdb'), `written on ${A}`);
});

test('growing a volume attached to a running guest: the guest sees the new size; shrinking is refused', async () => {
  assert.equal(await guest(B, 'size=vdb'), String(2 * 1024 ** 2));
  assert.match((await kumo(['volume', 'resize', V1, '--size', '2'])).stdout, /grew volume .* from 1 to 2 GiB \(the guest/);
  await waitFor('the new size in guest B', async () => ((await guest(B, 'size=vdb')) === String(4 * 1024 ** 2) ? true : undefined), 30_000);
  assert.equal((await env.ctx.qemuImg.info(volumeFile(V1))).virtualSize, 2 * 1024 ** 3);
  const shown = JSON.parse((await kumo(['volume', 'show', V1, '--json'])).stdout) as { sizeGiB: number; drift: string[] };
  assert.deepEqual([shown.sizeGiB, shown.drift], [2, []]);
  assert.equal(await guest(B, 'read=vdb'), `written on ${A}`, 'the data is still there');

  const shrink = await kumo(['volume', 'resize', V1, '--size', '1'], 2);
  assert.match(shrink.stderr, /is 2 GiB: shrinking it to 1 GiB would cut off its data/);
  assert.equal((await env.ctx.qemuImg.info(volumeFile(V1))).virtualSize, 2 * 1024 ** 3);
});

test('a volume cannot be deleted while attached', async () => {
  const r = await kumo(['volume', 'delete', V1], 4);
  assert.match(r.stderr, new RegExp(`attached to instance "${B}"[^]*fix: detach it first: kumo volume detach ${V1}`));
  assert.ok(existsSync(volumeFile(V1)));
});

test('attach to a stopped instance and grow its root disk: after start the guest has both', async () => {
  const kibBefore = Number((await guest(A, 'df')).split(/\s+/)[1]);
  assert.ok(kibBefore < 1024 ** 2, `root filesystem is ${kibBefore} KiB before the resize`);
  const running = await kumo(['instance', 'resize', A, '--disk-size', '2'], 4);
  assert.match(running.stderr, new RegExp(`is running: [^]*fix: stop it first: kumo instance stop ${A}`));

  await svc.stop(A, 90_000);
  await kumo(['volume', 'create', V2, '--size', '1']);
  assert.match((await kumo(['volume', 'attach', V2, A])).stdout, /as vdb \(the guest sees it when it starts/);
  assert.deepEqual(await domainDisks(A), [`config vda ${join(env.home, 'instances', A, 'root.qcow2')}`, `config sda ${join(env.home, 'instances', A, 'seed.iso')}`,
    `config vdb ${volumeFile(V2)}`, `live vda ${join(env.home, 'instances', A, 'root.qcow2')}`, `live sda ${join(env.home, 'instances', A, 'seed.iso')}`,
    `live vdb ${volumeFile(V2)}`].sort());

  assert.match((await kumo(['instance', 'resize', A, '--disk-size', '2'])).stdout, /grew the root disk of .* from 1 to 2 GiB/);
  const shrink = await kumo(['instance', 'resize', A, '--disk-size', '1'], 2);
  assert.match(shrink.stderr, /is 2 GiB: shrinking it to 1 GiB would cut off[^]*fix: give --disk-size 2 or more/);
  assert.equal(env.ctx.instances.get(A)?.diskGiB, 2);

  await svc.start(A);
  await ready(A);
  assert.deepEqual(await guestDisks(A), ['vda', 'vdb']);
  assert.equal(await guest(A, 'size=vdb'), String(2 * 1024 ** 2));
  const kibAfter = Number((await guest(A, 'df')).split(/\s+/)[1]);
  assert.ok(kibAfter > 1.5 * 1024 ** 2, `root filesystem is ${kibAfter} KiB after growing the disk to 2 GiB (was ${kibBefore})`);
});

test('bad input for every command: a clear error, and nothing made or changed', async () => {
  const files = () => readdirSync(join(env.home, 'volumes')).sort();
  const before = { files: files(), list: (await kumo(['volume', 'list', '--json'])).stdout, a: await domainDisks(A), b: await domainDisks(B) };
  const V3 = `${env.prefix}-v3`;
  const cases: [string[], number, RegExp][] = [
    [['volume', 'create', 'bad_name!', '--size', '1'], 2, /volume name "bad_name!" is not valid/],
    [['volume', 'create', V3, '--size', '0'], 2, /--size must be a whole number of GiB from 1 to 4096, got 0/],
    [['volume', 'create', V3, '--size', 'ten'], 2, /--size must be a whole number .* got not a number/],
    [['volume', 'create', V3, '--size', '5000'], 2, /--size must be .* got 5000/],
    [['volume', 'create', V3], 2, /required option '--size <GiB>'/],
    [['volume', 'create', V1, '--size', '1'], 4, new RegExp(`volume "${V1}" already exists`)],
    [['volume', 'show', V3], 3, new RegExp(`volume "${V3}" does not exist[^]*kumo volume list`)],
    [['volume', 'attach', V3, A], 3, new RegExp(`volume "${V3}" does not exist`)],
    [['volume', 'attach', V2, B], 4, new RegExp(`already attached to instance "${A}" \\(vdb\\)[^]*kumo volume detach ${V2}`)],
    [['volume', 'detach', V3], 3, new RegExp(`volume "${V3}" does not exist`)],
    [['volume', 'resize', V3, '--size', '3'], 3, new RegExp(`volume "${V3}" does not exist`)],
    [['volume', 'resize', V1, '--size', '-1'], 2, /--size must be a whole number/],
    [['volume', 'delete', V3], 3, new RegExp(`volume "${V3}" does not exist`)],
    [['instance', 'resize', `${env.prefix}-zz`, '--disk-size', '3'], 3, /instance ".*-zz" does not exist/],
    [['instance', 'resize', A, '--disk-size', '0'], 2, /--disk-size must be a whole number from 1 to 4096 GiB, got 0/],
    [['instance', 'resize', A, '--disk-size', '1'], 2, /shrinking it to 1 GiB/],
    [['instance', 'resize', A], 2, /required option '--disk-size <GiB>'/],
  ];
  for (const [args, code, message] of cases) assert.match((await kumo(args, code)).stderr, message, args.join(' '));

  // A volume that exists but is not attached: unknown instance, and detach of a detached volume.
  await kumo(['volume', 'create', V3, '--size', '1']);
  assert.match((await kumo(['volume', 'attach', V3, `${env.prefix}-zz`], 3)).stderr, /instance ".*-zz" does not exist/);
  assert.match((await kumo(['volume', 'detach', V3], 2)).stderr, new RegExp(`not attached to any instance[^]*kumo volume attach ${V3} INSTANCE`));
  // kumo's domains keep spare PCIe root ports, so a second live hot-plug into A finds a slot.
  await kumo(['volume', 'attach', V3, A]);
  assert.equal(env.ctx.volumes.get(V3)?.instance, A);
  assert.match((await kumo(['instance', 'show', A])).stdout, new RegExp(`volume\\s+${V3}\\s+/dev/vd[b-z]\\s+1 GiB`));
  await kumo(['volume', 'detach', V3]);
  assert.equal(env.ctx.volumes.get(V3)?.instance, undefined);
  assert.match((await kumo(['volume', 'resize', V3, '--size', '1'])).stdout, /already 1 GiB/);
  await kumo(['volume', 'delete', V3]);

  assert.deepEqual(files(), before.files);
  assert.equal((await kumo(['volume', 'list', '--json'])).stdout, before.list);
  assert.deepEqual(await domainDisks(A), before.a);
  assert.deepEqual(await domainDisks(B), before.b);
  assert.equal(env.ctx.instances.get(A)?.diskGiB, 2);
  assert.deepEqual(env.ctx.journal.pending(), []);
});

test('deleting an instance keeps its volumes, detached; detach from a running guest, then delete: nothing left', async () => {
  const del = await kumo(['instance', 'delete', B]);
  assert.match(del.stdout, new RegExp(`deleted ${B}\\n\\s+kept volume ${V1}, now detached`));
  assert.equal(env.ctx.volumes.get(V1)?.instance, undefined);
  assert.ok(existsSync(volumeFile(V1)));
  await kumo(['volume', 'delete', V1]);

  // A paused guest cannot release the disk: detach times out with a clear error and the volume
  // stays recorded as attached; once the guest runs again, detach finishes.
  await env.ctx.virsh.run(['suspend', A]);
  const slow = await kumo(['volume', 'detach', V2, '--timeout', '1'], 7);
  assert.match(slow.stderr, new RegExp(`guest of instance "${A}" did not release volume "${V2}" \\(vdb\\) within 1 s[^]*fix: .*kumo volume detach ${V2}\` again`));
  assert.equal(env.ctx.volumes.get(V2)?.instance, A);
  assert.ok((await domainDisks(A)).includes(`live vdb ${volumeFile(V2)}`));
  await env.ctx.virsh.run(['resume', A]);
  await kumo(['volume', 'detach', V2]);
  await waitFor('vdb gone from guest A', async () => ((await guestDisks(A)).includes('vdb') ? undefined : true), 30_000);
  assert.ok(!(await domainDisks(A)).some((d) => d.includes('/volumes/')));
  await kumo(['volume', 'delete', V2]);

  assert.deepEqual(readdirSync(join(env.home, 'volumes')), []);
  assert.deepEqual(JSON.parse((await kumo(['volume', 'list', '--json'])).stdout), []);
  assert.deepEqual(env.ctx.journal.pending(), []);
});
