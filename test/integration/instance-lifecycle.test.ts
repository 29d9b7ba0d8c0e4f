import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { verify } from 'unixcrypt';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';
import { screenFacts } from '../helpers/png.js';
import { virtXmlValidate } from '../helpers/tools.js';

let env: TestEnv;
let svc: InstanceService;

before(async () => {
  env = await makeTestEnv('life');
  await new ImageService(env.ctx).buildTiny();
  svc = new InstanceService(env.ctx);
});
after(async () => env?.cleanup());

const userData = `#cloud-config
write_files:
  - path: /var/www/note.txt
    content: |
      written by write_files
runcmd:
  - "grep '^root:' /etc/shadow | cut -d: -f2 > /var/www/shadow.txt"
  - df -k / | tail -n 1 > /var/www/df.txt
  - ls /dev/ > /var/www/dev.txt
`;

/** A page the guest serves with 200 (runcmd may still be writing it). */
async function page(ip: string, path: string): Promise<string> {
  return waitFor(`http://${ip}:8080${path}`, async () => {
    const res = await fetch(`http://${ip}:8080${path}`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    return res?.ok ? res.text() : undefined;
  }, 60_000);
}

test('create → guest answers on 8080 with its hostname; password, disk size, data disk and user-data as asked', async () => {
  const name = `${env.prefix}-a`;
  const inst = await svc.create({
    name, image: 'tiny', flavor: 'small', password: 'test123', networks: [env.network], dataDisks: [5], userData,
  });
  assert.equal(inst.state, 'running');
  const { ip, check } = await svc.waitReady(name, 180_000);
  assert.equal(check, 'http:8080', 'the tiny image is ready when it answers HTTP on 8080');
  assert.match(await page(ip, '/'), new RegExp(name));

  // The hash in the guest's /etc/shadow is the one kumo stored, and it verifies the password.
  const shadow = (await page(ip, '/shadow.txt')).trim();
  assert.equal(shadow, env.ctx.instances.get(name)?.passwordHash);
  assert.ok(verify('test123', shadow));
  assert.equal((await page(ip, '/note.txt')).trim(), 'written by write_files');

  // The root disk was grown to the flavor's 10 GiB and the 5 GiB data disk is there.
  const kib = Number((await page(ip, '/df.txt')).trim().split(/\s+/)[1]);
  assert.ok(kib > 9 * 1024 * 1024, `root filesystem is ${kib} KiB, expected about 10 GiB`);
  assert.match(await page(ip, '/dev.txt'), /\bvdb\b/);

  // An ordinary libvirt domain: virsh sees it, with kumo's metadata and VNC on a unix socket (root only).
  const list = (await local.run('virsh', ['-c', 'qemu:///system', 'list', '--all'])).stdout;
  assert.match(list, new RegExp(`${name}\\s+running`));
  const xml = await svc.xml(name);
  assert.match(xml, /kumo:instance/);
  const socket = join(env.home, 'instances', name, 'vnc', 'vnc.sock');
  assert.ok(xml.includes(`<graphics type='vnc' socket='${socket}'>`), 'VNC listens on a unix socket in the instance folder');
  assert.equal((await svc.get(name)).vnc, socket);
  // The definition libvirt stored after define (and the live one) passes libvirt's own schema,
  // read with virsh rather than kumo; a hand-broken copy does not.
  for (const flags of [['--inactive'], []]) {
    const stored = (await local.run('virsh', ['-c', 'qemu:///system', 'dumpxml', ...flags, name])).stdout;
    const r = await virtXmlValidate(stored, 'domain');
    assert.ok(r.ok, `virt-xml-validate refused the domain as libvirt stores it (dumpxml ${flags.join(' ')}):\n${r.output}\n${stored}`);
    if (flags.length) assert.equal((await virtXmlValidate(stored.replace('<devices>', '<devices><bogus/>'), 'domain')).ok, false, 'the check can fail');
  }
  // The VNC screen shows the guest's own console: its framebuffer (not the BIOS's 720x400
  // text screen) with text on it.
  const shot = join(env.home, 'screen.png');
  await waitFor('the guest console on the VNC screen', async () => {
    await local.run('virsh', ['-c', 'qemu:///system', 'screenshot', name, shot]);
    const s = screenFacts(shot);
    return s.width >= 1024 && s.lit > 0.005 ? true : undefined;
  }, 60_000);
  // The overlay backs onto the shared image instead of copying it.
  const info = await env.ctx.qemuImg.info(join(env.home, 'instances', name, 'root.qcow2'));
  assert.equal(info.virtualSize, 10 * 1024 ** 3);
  assert.ok(info.backingFile?.endsWith('images/tiny/disk.qcow2'));
  assert.ok(info.actualSize < 50 * 1024 ** 2, `overlay takes ${info.actualSize} bytes`);
});

test('stop (ACPI), start and reboot: the guest comes back each time', async () => {
  const name = `${env.prefix}-a`;
  const r = await svc.stop(name, 90_000);
  assert.equal(r.forced, false, 'the guest should power off on the ACPI button');
  assert.equal((await svc.get(name)).state, 'shut off');
  await svc.start(name);
  const { ip } = await svc.waitReady(name, 180_000);
  const bootsBefore = (await svc.readConsoleLog(name)).split('Linux version').length;
  await svc.reboot(name);
  await waitFor('a second boot in the console log', async () =>
    ((await svc.readConsoleLog(name)).split('Linux version').length > bootsBefore ? true : undefined), 120_000);
  await svc.waitReady(name, 180_000);
  assert.match(await page(ip, '/'), new RegExp(name));
});

test('delete leaves nothing behind', async () => {
  const name = `${env.prefix}-a`;
  await svc.delete(name);
  assert.equal(existsSync(join(env.home, 'instances', name)), false);
  const list = (await local.run('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'])).stdout;
  assert.ok(!list.split('\n').includes(name));
  assert.deepEqual(await svc.list(), []);
});

test('a domain removed behind kumo\'s back shows as missing, not as a crash, and can still be deleted', async () => {
  const name = `${env.prefix}-b`;
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network], start: false });
  await local.run('virsh', ['-c', 'qemu:///system', 'undefine', name]);
  const [inst] = await svc.list();
  assert.equal(inst?.state, 'missing');
  assert.match(inst?.drift[0] ?? '', /gone/);
  const cli = await env.cli(['instance', 'list']);
  assert.equal(cli.code, 0);
  assert.match(cli.stdout, new RegExp(`${name}\\s+missing`));
  await svc.delete(name);
  assert.deepEqual(readdirSync(join(env.home, 'instances')), []);
});
