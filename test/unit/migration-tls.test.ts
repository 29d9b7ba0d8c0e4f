import test from 'node:test';
import assert from 'node:assert/strict';
import type { Executor, RunResult } from '../../src/exec/exec.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { migrateLive } from '../../src/drivers/libvirt/migrate.js';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingTlsFiles, migrationTlsDir, TLS_FILES } from '../../src/drivers/libvirt/migration-tls.js';
import { libvirtdFiles, MIGRATION_TLS_FILES, writeMigrationTls } from '../../src/drivers/daemons/libvirtd/state.js';
import { LabSpecSchema } from '../../src/model/lab.js';
import { openContext } from '../../src/service/context.js';
import { DatacenterService } from '../../src/service/datacenter/engine.js';
import { LabService } from '../../src/service/lab.js';
import { MigrationService } from '../../src/service/migration.js';
import type { Context } from '../../src/service/context.js';
import { KumoError } from '../../src/model/errors.js';

/**
 * The option of an encrypted migration stream: `--tls` reaches virsh (libvirt then refuses
 * rather than fall back to plain TCP), and missing certificates are refused before anything moves.
 */

/** A host whose shell answers `cat` with `conf` and `test -r` for the files in `present`; records every call. */
function fakeShell(conf: string | undefined, present: string[]): Executor & { calls: string[][] } {
  const calls: string[][] = [];
  const ok = (stdout = ''): RunResult => ({ stdout, stderr: '', code: 0 });
  return {
    description: 'fake', calls,
    async run(command, args) {
      calls.push([command, ...args]);
      if (command === 'cat') return conf === undefined ? { stdout: '', stderr: 'No such file', code: 1 } : ok(conf);
      if (command === 'test') return present.includes(args[1]!) ? ok() : { stdout: '', stderr: '', code: 1 };
      if (command === 'virsh') return ok(args.includes('domstate') ? 'running\n' : '');
      throw new Error(`unexpected ${command}`);
    },
    open() { throw new Error('not used'); },
  };
}

test('the certificate folder is qemu.conf\'s migrate_tls_x509_cert_dir, else default_tls_x509_cert_dir, else /etc/pki/qemu', () => {
  assert.equal(migrationTlsDir(''), '/etc/pki/qemu');
  assert.equal(migrationTlsDir('#migrate_tls_x509_cert_dir = "/x"\n'), '/etc/pki/qemu', 'a comment is no setting');
  assert.equal(migrationTlsDir('default_tls_x509_cert_dir = "/etc/kumo/pki"\n'), '/etc/kumo/pki');
  assert.equal(migrationTlsDir('default_tls_x509_cert_dir = "/a"\nmigrate_tls_x509_cert_dir = "/b"\n'), '/b');
});

test('each end lacks what it needs: the source a client certificate, the destination a server certificate', async () => {
  const shell = fakeShell(undefined, ['/etc/pki/qemu/ca-cert.pem', '/etc/pki/qemu/client-cert.pem', '/etc/pki/qemu/client-key.pem']);
  assert.deepEqual(await missingTlsFiles(shell, 'source'), { dir: '/etc/pki/qemu', missing: [] });
  assert.deepEqual(await missingTlsFiles(shell, 'destination'), { dir: '/etc/pki/qemu', missing: ['server-cert.pem', 'server-key.pem'] });
});

test('an encrypted migration without certificates is refused before anything moves, naming the host, folder and files', async () => {
  const source = fakeShell('migrate_tls_x509_cert_dir = "/srv/pki"\n', ['/srv/pki/ca-cert.pem', '/srv/pki/client-cert.pem', '/srv/pki/client-key.pem']);
  const dest = fakeShell(undefined, []);
  // The check needs only the hosts' shells.
  const ctx = { shellOf: (h: string) => (h === 'kvm1' ? source : dest), hosts: { get: () => undefined } } as unknown as Context;
  await assert.rejects(new MigrationService(ctx).checkTls('kvm1', 'kvm2'), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT'
    && e.message === 'an encrypted migration needs QEMU\'s TLS certificates, and destination host kvm2 lacks ca-cert.pem, server-cert.pem, server-key.pem in /etc/pki/qemu'
    && /server certificate/.test(e.fix ?? ''));
  assert.ok(!dest.calls.some((c) => c[0] === 'virsh') && !source.calls.some((c) => c[0] === 'virsh'), 'no libvirt call was made');
});

test('tls: true puts --tls on virsh migrate (libvirt then never falls back to plain TCP); without it, no --tls', async () => {
  for (const tls of [true, false]) {
    const shell = fakeShell(undefined, []);
    const v = new Virsh('qemu+ssh://root@10.5.2.11/system', shell);
    await migrateLive({ source: v, dest: v, domain: '3f1c2a7e-9b4d-4e21-8a55-0c6d2e9f7b10', label: 'web1', migrateUri: 'tcp://10.5.2.12', tls, timeoutMs: 1_000 });
    const migrate = shell.calls.find((c) => c.includes('migrate'))!;
    assert.equal(migrate.includes('--tls'), tls);
    assert.ok(migrate.includes('3f1c2a7e-9b4d-4e21-8a55-0c6d2e9f7b10'), 'the domain travels by its UUID');
  }
});

test('a lab daemon\'s certificates are looked for in its private config, which its host\'s shell sees under the state folder', async () => {
  // The shell of a lab node is its network namespace only: /etc/libvirt there is the host's.
  // Before, the check read the host's qemu.conf and /etc/pki/qemu, never what the daemon uses.
  const state = '/var/lib/kumo/lab/libvirt/kvm2';
  const shell = fakeShell('migrate_tls_x509_cert_dir = "/etc/libvirt/pki/qemu"\n',
    TLS_FILES.destination.map((f) => `${state}/etc/pki/qemu/${f}`));
  const uri = `qemu+unix:///system?socket=${state}/run/libvirt-sock`;
  assert.deepEqual(await missingTlsFiles(shell, 'destination', uri), { dir: '/etc/libvirt/pki/qemu', missing: [] });
  assert.deepEqual(shell.calls[0], ['cat', `${state}/etc/qemu.conf`]);
  const ctx = { shellOf: () => shell, hosts: { get: () => ({ uri }) } } as unknown as Context;
  await assert.rejects(new MigrationService(ctx).checkTls('kvm2', 'kvm2'),
    /source host kvm2 lacks client-cert\.pem, client-key\.pem in \/etc\/libvirt\/pki\/qemu$/, 'the private folder has only the server\'s files');
  // The system's daemon (and one over ssh) keeps the system's files.
  assert.equal(libvirtdFiles('qemu:///system').qemuConf, '/etc/libvirt/qemu.conf');
  assert.equal(libvirtdFiles('qemu+ssh://root@10.5.2.11/system').path('/etc/libvirt/pki/qemu/ca-cert.pem'), '/etc/libvirt/pki/qemu/ca-cert.pem');
  assert.equal(libvirtdFiles(uri).path('/etc/pki/qemu/x.pem'), '/etc/pki/qemu/x.pem', 'a folder the namespace does not hide is the same path');
  assert.equal(libvirtdFiles(uri).path('/var/lib/libvirt/x'), `${state}/lib/x`);
});

test('a lab daemon gets its migration certificates (keys for QEMU\'s group only); without them, kumo\'s setting goes again', async () => {
  const state = await mkdtemp(join(tmpdir(), 'kumo-tls-unit-'));
  try {
    const from = join(state, 'certs');
    await mkdir(join(state, 'etc'), { recursive: true });
    await mkdir(from);
    await writeFile(join(state, 'etc', 'qemu.conf'), '# the host\'s\nuser = "libvirt-qemu"\n');
    await assert.rejects(writeMigrationTls(state, from, undefined), (e: unknown) => e instanceof KumoError && /lacks ca-cert\.pem, server-cert\.pem/.test(e.message));
    for (const f of MIGRATION_TLS_FILES) await writeFile(join(from, f), f);
    await writeMigrationTls(state, from, 4242);
    await writeMigrationTls(state, from, 4242); // again: one setting, not two
    const conf = await readFile(join(state, 'etc', 'qemu.conf'), 'utf8');
    assert.equal(conf.match(/migrate_tls_x509_cert_dir/g)?.length, 1);
    assert.match(conf, /^user = "libvirt-qemu"\n[\s\S]*^migrate_tls_x509_cert_dir = "\/etc\/libvirt\/pki\/qemu"$/m);
    const key = await stat(join(state, 'etc', 'pki', 'qemu', 'server-key.pem'));
    assert.equal(key.mode & 0o777, 0o640);
    assert.equal(key.gid, 4242);
    assert.equal((await stat(join(state, 'etc', 'pki', 'qemu', 'ca-cert.pem'))).mode & 0o777, 0o644);
    await writeMigrationTls(state, undefined, 4242);
    assert.equal(await readFile(join(state, 'etc', 'qemu.conf'), 'utf8'), '# the host\'s\nuser = "libvirt-qemu"\n');
  } finally {
    await rm(state, { recursive: true, force: true });
  }
});

test('a lab file\'s migration_tls is an absolute folder', () => {
  const lab = { segments: { backend: { cidr: '10.5.2.0/24', instances: true } }, nodes: { kvm1: { roles: ['hypervisor'], links: { backend: '10.5.2.11' } } } };
  assert.equal(LabSpecSchema.parse({ ...lab, migration_tls: '/srv/pki' }).migration_tls, '/srv/pki');
  assert.equal(LabSpecSchema.safeParse({ ...lab, migration_tls: 'pki' }).success, false);
  assert.equal(LabSpecSchema.parse(lab).migration_tls, undefined);
});

test('a server folder of keys is root\'s: a datacenter file\'s lab (and any caller but the CLI) may not name migration_tls', async () => {
  const home = await mkdtemp(join(tmpdir(), 'kumo-tls-reach-'));
  const ctx = openContext({ home, exec: { description: 'nowhere', run: async (c) => { throw new Error(`${c}: not in a unit test`); }, open: async () => { throw new Error('not in a unit test'); } } });
  try {
    const svc = new DatacenterService(ctx);
    const dc = svc.parse([
      'name: t',
      'lab:',
      '  segments: { backend: { cidr: 10.5.2.0/24, instances: true } }',
      '  nodes: { kvm1: { roles: [hypervisor], links: { backend: 10.5.2.11 } } }',
      '  migration_tls: /root',
      '',
    ].join('\n'), 't.yaml');
    await assert.rejects(svc.plan(dc), /t\.yaml:\d+:\d+: lab\.migration_tls: a datacenter file's lab may not name a server folder \(migration_tls\): only root/);
    // LabService itself defaults to the cloud: refused before anything is made.
    await assert.rejects(new LabService(ctx).up(dc.lab!), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && /migration_tls names a folder on the server \(\/root\)/.test(e.message));
    assert.equal(new LabService(ctx).state(), undefined, 'nothing was made');
  } finally {
    ctx.close();
    await rm(home, { recursive: true, force: true });
  }
});
