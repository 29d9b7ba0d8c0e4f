import test from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { formatReadyCheck, parseReadyCheck, readyCheckOf } from '../../src/model/readiness.js';
import { readBootReport } from '../../src/model/guest-console.js';
import { buildSeed } from '../../src/drivers/image/seed.js';
import { KumoError } from '../../src/model/errors.js';

/** A Debian 12 guest's serial console as cloud-init 22.4 writes it (colours and kernel times included). */
const boot = (id: string, final: string[] = []) => [
  '[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3',
  '[   25.994389] systemd[1]: Starting cloud-init-local.service - Initial cloud-init job (pre-networking)...',
  '\x1b[0;32m  OK  \x1b[0m] Finished \x1b[0;1;39mcloud-init-local.service\x1b[0m.',
  '[   69.543088] cloud-init[301]: Cloud-init v. 22.4.2 running \'init-local\' at Mon, 07 Dec 2026 00:57:27 +0000. Up 68.95 seconds.',
  '[  105.610429] cloud-init[359]: Cloud-init v. 22.4.2 running \'init\' at Mon, 07 Dec 2026 00:58:02 +0000. Up 104.70 seconds.',
  '[  190.000000] cloud-init[512]: Cloud-init v. 22.4.2 running \'modules:final\' at Mon, 07 Dec 2026 01:00:00 +0000. Up 190.12 seconds.',
  ...final,
  `[  201.000000] cloud-init[512]: Cloud-init v. 22.4.2 finished at Mon, 07 Dec 2026 01:00:01 +0000. Datasource DataSourceNoCloud [seed=/dev/sr0][dsmode=net].  Up 201.00 seconds. kumo instance ${id}`,
  'vm1 login: ',
].join('\r\n');

test('readiness checks: the four forms parse and print back; anything else names the forms', () => {
  for (const t of ['http:8080', 'http:1', 'ssh', 'cloud-init', 'agent']) assert.equal(formatReadyCheck(parseReadyCheck(t)), t);
  assert.deepEqual(parseReadyCheck(' http:80 '), { kind: 'http', port: 80 });
  for (const bad of ['http', 'http:', 'http:0', 'http:65536', 'http:80x', 'HTTP:80', 'tcp:22', 'cloudinit', '', 'ssh;reboot']) {
    assert.throws(() => parseReadyCheck(bad, '--wait-for'), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT'
      && /--wait-for/.test(e.message) && /http:PORT|1 to 65535/.test(`${e.message} ${e.fix ?? ''}`), bad);
  }
});

test('an image\'s readiness: its own when set, else http:8080 for the tiny image and cloud-init for any other', () => {
  assert.deepEqual(readyCheckOf({ source: 'tiny:abc' }), { kind: 'http', port: 8080 });
  assert.deepEqual(readyCheckOf({ source: 'debian-12:abc' }), { kind: 'cloud-init' });
  assert.deepEqual(readyCheckOf({ source: 'https://example.org/CentOS-7.qcow2' }), { kind: 'cloud-init' });
  assert.deepEqual(readyCheckOf({ source: 'tiny:abc', ready: 'ssh' }), { kind: 'ssh' });
});

test('the console: cloud-init done in the current boot, with its version, uptime and instance id', () => {
  const r = readBootReport(boot('i-1'));
  assert.equal(r.booted, true);
  assert.deepEqual(r.cloudInit, { stage: 'done', version: '22.4.2', upSeconds: 201, instanceId: 'i-1' });
  assert.deepEqual(r.errors, []);
});

test('the console: only the last boot counts (the log is appended across boots)', () => {
  const second = '[    0.000000] Linux version 6.1.0-57-amd64 #1 SMP\n[   20.0] cloud-init[300]: Cloud-init v. 22.4.2 running \'init-local\' at ... Up 19.00 seconds.';
  const r = readBootReport(`${boot('i-1', ['cloud-init[512]: 2026-12-07 01:00:00,100 - util.py[WARNING]: Failed running /var/lib/cloud/instance/scripts/runcmd [3]'])}\n${second}`);
  assert.equal(r.cloudInit?.stage, 'running', 'the first boot\'s finish is not this boot\'s');
  assert.deepEqual(r.errors, [], 'nor are its errors');
  assert.deepEqual(readBootReport('').cloudInit, undefined);
  assert.equal(readBootReport('SeaBIOS (version 1.16)\nBooting from Hard Disk...').booted, false);
});

test('the console: cloud-init\'s failing module and a kernel panic are reported as printed', () => {
  const failed = readBootReport(boot('i-2', [
    // As a Debian 12 guest printed them for a runcmd that exited 3 (cloud-init 22.4.2).
    '[  195.1] cloud-init[512]: kumo-broken-step',
    '[  195.2] cloud-init[512]: 2026-12-07 01:00:00,101 - cc_scripts_user.py[WARNING]: Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts)',
    '[  195.2] cloud-init[512]: 2026-12-07 01:00:00,101 - cc_scripts_user.py[WARNING]: Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts)',
    "[  195.3] cloud-init[512]: 2026-12-07 01:00:00,102 - util.py[WARNING]: Running module scripts-user (<module 'cloudinit.config.cc_scripts_user' from '/usr/lib/python3/dist-packages/cloudinit/config/cc_scripts_user.py'>) failed",
  ]));
  assert.deepEqual(failed.errors, [
    'WARNING: Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts)',
    "WARNING: Running module scripts-user (<module 'cloudinit.config.cc_scripts_user' from '/usr/lib/python3/dist-packages/cloudinit/config/cc_scripts_user.py'>) failed",
  ], 'each once');
  const panic = readBootReport('[    0.0] Linux version 6.1.0\n[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n');
  assert.equal(panic.panic, 'VFS: Unable to mount root fs on unknown-block(0,0)');
});

test('the seed names the instance in cloud-init\'s final message; a final_message of the user\'s own is kept', () => {
  const base = { instanceId: 'a1b2', hostname: 'web1', sshKeys: [], nics: [] };
  const ours = parse(buildSeed(base)['user-data']) as Record<string, unknown>;
  assert.match(String(ours.final_message), /^Cloud-init v\. \$\{version\} finished at .* kumo instance a1b2$/);
  // Rendered as cloud-init 22.4's basic renderer does (templater.py BASIC_MATCHER): a dotted name would fail it.
  const subs: Record<string, string> = { version: '22.4.2', timestamp: 'now', datasource: 'NoCloud', uptime: '9.5' };
  const line = String(ours.final_message).replace(/\$\{([A-Za-z0-9_.]+)\}|\$([A-Za-z0-9_.]+)/g, (_m, a?: string, b?: string) => {
    const key = a ?? b ?? '';
    if (!(key in subs)) throw new Error(`cloud-init could not render $${key}`);
    return subs[key]!;
  });
  assert.deepEqual(readBootReport(`Linux version 6\ncloud-init[1]: ${line}`).cloudInit, { stage: 'done', version: '22.4.2', upSeconds: 9.5, instanceId: 'a1b2' },
    'the message kumo sets is the one it recognises');
  const theirs = parse(buildSeed({ ...base, userData: '#cloud-config\nfinal_message: "all done"\n' })['user-data']) as Record<string, unknown>;
  assert.equal(theirs.final_message, 'all done');
});
