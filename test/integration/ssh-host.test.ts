import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { freePort } from '../helpers/lab.js';
import { local } from '../../src/exec/exec.js';
import { SshExecutor } from '../../src/exec/ssh.js';
import { KumoError } from '../../src/model/errors.js';

/**
 * A "real host" reached over ssh: an OpenSSH server of the test's own on 127.0.0.1 with a key
 * made for the run. The ssh executor runs commands there with every argument intact, and
 * `kumo host add` registers this machine's libvirt through qemu+ssh:// with that login.
 */
let env: TestEnv;
let sshd: ChildProcess | undefined;
let port: number;
let key: string;
const haveSshd = existsSync('/usr/sbin/sshd');

before(async () => {
  env = await makeTestEnv('ssh');
  if (!haveSshd) return;
  const dir = join(env.home, 'sshd');
  await mkdir(dir, { mode: 0o700 });
  key = join(dir, 'client_key');
  await local.run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  await local.run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  await writeFile(join(dir, 'authorized_keys'), await local.run('cat', [`${key}.pub`]).then((r) => r.stdout), { mode: 0o600 });
  port = await freePort();
  await writeFile(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password', 'UsePAM no', 'StrictModes no', `PidFile ${join(dir, 'sshd.pid')}`, '',
  ].join('\n'));
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation needs it
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: 'ignore' });
  const probe = new SshExecutor({ destination: 'root@127.0.0.1', port, identity: key });
  await waitFor('sshd to accept the key', () => probe.run('true', []).then(() => true, () => undefined), 20_000);
});

after(async () => {
  sshd?.kill('SIGTERM');
  // The client remembered this run's throw-away host key: forget it again.
  if (port) await local.run('ssh-keygen', ['-R', `[127.0.0.1]:${port}`], { allowFailure: true });
  await env?.cleanup();
});

test('the ssh executor passes every argument, stdin and the working folder unchanged', { skip: !haveSshd && 'openssh-server is not installed' }, async () => {
  const ssh = new SshExecutor({ destination: 'root@127.0.0.1', port, identity: key });
  const tricky = ['a b', "it's", '$HOME', '; touch /tmp/kumo-pwned', '`id`', '"quoted"', '*', ''];
  const r = await ssh.run('printf', ['%s|', ...tricky]);
  assert.equal(r.stdout, `${tricky.join('|')}|`);
  assert.equal(existsSync('/tmp/kumo-pwned'), false);
  assert.equal((await ssh.run('cat', [], { input: 'through stdin\n' })).stdout, 'through stdin\n');
  assert.equal((await ssh.run('pwd', [], { cwd: '/usr/share' })).stdout.trim(), '/usr/share');
  assert.equal((await ssh.run('sh', ['-c', 'exit 3'], { allowFailure: true })).code, 3);
  await assert.rejects(ssh.run('false', []), (e: KumoError) => e.code === 'COMMAND_FAILED');
  await assert.rejects(ssh.run('kumo-no-such-tool', []), (e: KumoError) => e.code === 'MISSING_DEPENDENCY' && /127\.0\.0\.1/.test(e.message));
  const closed = new SshExecutor({ destination: 'root@127.0.0.1', port: await freePort(), identity: key });
  await assert.rejects(closed.run('true', []), (e: KumoError) => e.code === 'HOST_UNREACHABLE' && /ssh .*true/.test(e.fix ?? ''));
});

test('kumo host add registers a hypervisor by qemu+ssh:// and runs its commands over ssh', { skip: !haveSshd && 'openssh-server is not installed' }, async () => {
  const uri = `qemu+ssh://root@127.0.0.1:${port}/system?keyfile=${key}&no_verify=1`;
  const added = await env.cli(['host', 'add', `${env.prefix}-remote`, '--uri', uri]);
  assert.equal(added.code, 0, added.stderr);
  const shown = JSON.parse((await env.cli(['host', 'show', `${env.prefix}-remote`, '--json'])).stdout) as { up: boolean; cpus: number; shell: { kind: string; destination: string; port: number; identity: string } };
  assert.equal(shown.up, true);
  assert.ok(shown.cpus > 0);
  assert.deepEqual(shown.shell, { kind: 'ssh', destination: 'root@127.0.0.1', port, identity: key });
  // A storage node has no libvirt: its shell is all kumo needs, and it must answer.
  const stg = await env.cli(['host', 'add', `${env.prefix}-stg`, '--role', 'storage', '--ssh', `root@127.0.0.1:${port}`, '--ssh-key', key]);
  assert.equal(stg.code, 0, stg.stderr);
  const wrong = await env.cli(['host', 'add', `${env.prefix}-gone`, '--role', 'storage', '--ssh', `root@127.0.0.1:${await freePort()}`, '--ssh-key', key]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /does not answer on its shell \(ssh root@127\.0\.0\.1:\d+\)/);
  const noUri = await env.cli(['host', 'add', `${env.prefix}-kvm9`, '--ssh', `root@127.0.0.1:${port}`]);
  assert.equal(noUri.code, 2);
  assert.match(noUri.stderr, /needs its libvirt URI/);
  const list = (await env.cli(['host', 'list'])).stdout;
  assert.match(list, new RegExp(`${env.prefix}-stg\\s+up\\s+storage.*ssh root@127\\.0\\.0\\.1:${port}`));
  assert.doesNotMatch(list, new RegExp(`${env.prefix}-gone`));
  // kumo doctor asks each ssh host its time (this very machine: within the 2 s it allows).
  const doctor = JSON.parse((await env.cli(['doctor', '--json'])).stdout) as { host: { check: string; ok: boolean; detail: string }[] };
  const clocks = doctor.host.filter((f) => f.check === 'clock');
  assert.deepEqual(clocks.map((f) => f.ok), [true, true], JSON.stringify(clocks));
  for (const h of ['remote', 'stg']) assert.ok(clocks.some((f) => new RegExp(`host ${env.prefix}-${h} within \\d+ ms of this machine`).test(f.detail)), JSON.stringify(clocks));
  for (const h of ['remote', 'stg']) assert.equal((await env.cli(['host', 'remove', `${env.prefix}-${h}`])).code, 0);
});
