import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { recoverInterrupted } from '../../src/service/recovery.js';
import { buildDomainXml } from '../../src/drivers/libvirt/domain-xml.js';
import { KumoError } from '../../src/model/errors.js';
import { local } from '../../src/exec/exec.js';

let env: TestEnv;
let files: string;

before(async () => {
  env = await makeTestEnv('bad');
  await new ImageService(env.ctx).buildTiny();
  files = join(env.home, 'files');
  await mkdir(files);
  await writeFile(join(files, 'pw'), 'test123\n');
  await writeFile(join(files, 'pw-newline'), 'test\n123\n');
  await writeFile(join(files, 'bad-user-data'), 'runcmd: [echo]\n');
  await writeFile(join(files, 'broken-user-data'), '#cloud-config\nruncmd: [unclosed\n');
});
after(async () => env?.cleanup());

/** Nothing of this run may be left: no instance folder, no record, no domain. */
async function assertNothingLeft(label: string) {
  assert.deepEqual(readdirSync(join(env.home, 'instances')), [], `${label}: instance folder left`);
  assert.deepEqual(env.ctx.instances.list(), [], `${label}: record left`);
  assert.deepEqual(env.ctx.journal.pending(), [], `${label}: journal entry left`);
  const doms = (await local.run('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'])).stdout;
  assert.ok(!doms.includes(env.prefix), `${label}: domain left`);
}

test('bad input is refused with a message that names the problem and the fix, and leaves nothing', async () => {
  const ok = (name: string) => ['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--network', env.network];
  const n = `${env.prefix}-x`;
  const cases: { args: string[]; code: number; says: RegExp }[] = [
    { args: ok('../etc').concat('--password-file', join(files, 'pw')), code: 2, says: /instance name "\.\.\/etc" is not valid/ },
    { args: ok('a b').concat('--password-file', join(files, 'pw')), code: 2, says: /not valid: use letters, digits/ },
    { args: ok('x;rm -rf /').concat('--password-file', join(files, 'pw')), code: 2, says: /not valid/ },
    { args: ok('<x>').concat('--password-file', join(files, 'pw')), code: 2, says: /not valid/ },
    { args: ok('a'.repeat(64)).concat('--password-file', join(files, 'pw')), code: 2, says: /not valid/ },
    { args: ok('-bad').concat('--password-file', join(files, 'pw')), code: 2, says: /unknown option|not valid/ },
    { args: ['instance', 'create', n, '--image', 'tiny', '--vcpus', '0', '--ram', '1024', '--disk-size', '10', '--password', 'x', '--network', env.network], code: 2, says: /--vcpus must be a whole number from 1 to 64, got 0/ },
    { args: ['instance', 'create', n, '--image', 'tiny', '--vcpus', '1', '--ram', 'lots', '--disk-size', '10', '--password', 'x', '--network', env.network], code: 2, says: /--ram must be a whole number .* got not a number/ },
    { args: ['instance', 'create', n, '--image', 'tiny', '--vcpus', '1', '--ram', '1024', '--disk-size', '-1', '--password', 'x', '--network', env.network], code: 2, says: /--disk-size must be a whole number/ },
    { args: ['instance', 'create', n, '--image', 'tiny', '--vcpus', '1', '--password', 'x'], code: 2, says: /no size given: pass --flavor NAME, or all of --vcpus, --ram and --disk-size/ },
    { args: ok(n).concat('--password', 'x', '--disk', '0'), code: 2, says: /--disk must be a whole number from 1 to 4096/ },
    { args: ok(n).concat('--password', 'x', '--disk', '99999'), code: 2, says: /--disk must be/ },
    { args: ok(n).concat('--password', 'x', '--flavor', 'huge'), code: 3, says: /flavor "huge" does not exist.*\n.*kumo flavor list/ },
    { args: ['instance', 'create', n, '--image', 'centos', '--flavor', 'small', '--password', 'x'], code: 3, says: /image "centos" does not exist.*\n.*kumo image import/ },
    { args: ['instance', 'create', n, '--image', 'tiny', '--flavor', 'small', '--password', 'x', '--network', `${env.prefix}-nonet`], code: 3, says: /network ".*-nonet" is not defined yet/ },
    { args: ok(n), code: 2, says: /no way to log in.*\n.*--password-file/ },
    { args: ok(n).concat('--password', ''), code: 2, says: /root password is empty/ },
    { args: ok(n).concat('--password-file', join(files, 'pw-newline')), code: 2, says: /control characters/ },
    { args: ok(n).concat('--password-file', join(files, 'missing')), code: 2, says: /--password-file: file .*missing does not exist/ },
    { args: ok(n).concat('--password', 'x', '--password-file', join(files, 'pw')), code: 2, says: /both given/ },
    { args: ok(n).concat('--password', 'x', '--user-data', join(files, 'missing')), code: 2, says: /--user-data: file .* does not exist/ },
    { args: ok(n).concat('--password', 'x', '--user-data', join(files, 'bad-user-data')), code: 2, says: /must start with the line "#cloud-config"/ },
    { args: ok(n).concat('--password', 'x', '--user-data', join(files, 'broken-user-data')), code: 2, says: /not valid YAML/ },
    { args: ok(n).concat('--ssh-key', 'not a key'), code: 2, says: /is not an ssh public key/ },
    { args: ok(n).concat('--password', 'x', '--console', 'tv'), code: 2, says: /Allowed choices are auto, none, serial, vnc/ },
  ];
  for (const c of cases) {
    const r = await env.cli(c.args);
    const label = c.args.join(' ');
    assert.equal(r.code, c.code, `${label}: exit ${r.code}, stderr: ${r.stderr}`);
    assert.match(r.stderr, c.says, `${label}`);
    assert.doesNotMatch(r.stderr, /internal error|at .*\.js:\d+/, `${label}: leaked a stack trace`);
    await assertNothingLeft(label);
  }
});

test('a failure after the domain was defined is rolled back completely', async () => {
  // An image whose kernel vanished: disks, seed and domain get made, then libvirt cannot start it.
  const kernel = join(files, 'vmlinuz');
  await writeFile(kernel, 'not really a kernel');
  const disk = join(files, 'base.qcow2');
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  const images = new ImageService(env.ctx);
  const image = await images.import(`${env.prefix}-broken`, disk, { kernel, os: 'broken' }, 'machine');
  await rm(image.kernel!);
  await assert.rejects(
    new InstanceService(env.ctx).create({ name: `${env.prefix}-rb`, image: image.name, flavor: 'small', password: 'x', networks: [env.network] }),
    (e: unknown) => e instanceof KumoError && /libvirt refused/.test(e.message),
  );
  await assertNothingLeft('rollback');
  await images.delete(image.name);
});

test('an operation interrupted by a crash is undone on the next start', async () => {
  const name = `${env.prefix}-crash`;
  const dir = join(env.home, 'instances', name);
  await mkdir(dir);
  await env.ctx.virsh.defineDomain(buildDomainXml({
    name, uuid: crypto.randomUUID(), type: 'qemu', vcpus: 1, ramMiB: 64, disks: [], nics: [],
    consoleLog: join(dir, 'console.log'), vncSocket: join(dir, 'vnc', 'vnc.sock'), metadata: { image: 'tiny', createdBy: 'kumo' },
  }));
  // A journal entry as a process that died half-way would leave it.
  env.ctx.db.prepare('INSERT INTO journal (operation, pid, undo, started_at) VALUES (?, ?, ?, ?)').run(
    `create instance ${name}`, 2 ** 22 + 1,
    JSON.stringify([{ kind: 'remove-path', path: dir }, { kind: 'undefine-domain', uri: 'qemu:///system', name }]),
    new Date().toISOString());
  const done = await recoverInterrupted(env.ctx);
  assert.equal(done.length, 1);
  assert.equal(existsSync(dir), false);
  await assertNothingLeft('crash recovery');
});
