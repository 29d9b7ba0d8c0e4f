import test from 'node:test';
import assert from 'node:assert/strict';
import type { Executor, RunResult } from '../../src/exec/exec.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { migrateLive } from '../../src/drivers/libvirt/migrate.js';
import { missingTlsFiles, migrationTlsDir } from '../../src/drivers/libvirt/migration-tls.js';
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
  const ctx = { shellOf: (h: string) => (h === 'kvm1' ? source : dest) } as unknown as Context;
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
