import type { Executor } from '../../exec/exec.js';
import { libvirtdFiles } from '../daemons/libvirtd/state.js';

/**
 * QEMU's native TLS for the migration stream (`virsh migrate --tls`): the destination QEMU
 * serves TLS with a server certificate, the source QEMU connects with a client certificate, both
 * signed by one CA. libvirt reads them from qemu.conf's `migrate_tls_x509_cert_dir`, else
 * `default_tls_x509_cert_dir`, else /etc/pki/qemu; with --tls it never falls back to plain TCP.
 */
export const DEFAULT_QEMU_TLS_DIR = '/etc/pki/qemu';

/** The files each end of a migration needs in that folder. */
export const TLS_FILES = {
  source: ['ca-cert.pem', 'client-cert.pem', 'client-key.pem'],
  destination: ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'],
} as const;

export type MigrationEnd = keyof typeof TLS_FILES;

/** The folder libvirt takes migration certificates from, by the text of qemu.conf. */
export function migrationTlsDir(qemuConf: string): string {
  const setting = (key: string) => new RegExp(`^\\s*${key}\\s*=\\s*"([^"]+)"`, 'm').exec(qemuConf)?.[1];
  return setting('migrate_tls_x509_cert_dir') ?? setting('default_tls_x509_cert_dir') ?? DEFAULT_QEMU_TLS_DIR;
}

/**
 * The certificate files one end lacks (unreadable counts as missing), and the folder looked in
 * (as the daemon names it). `daemonUri` says which libvirtd: a lab daemon reads its private
 * qemu.conf and folders, which the host's shell (outside its mount namespace) finds elsewhere.
 */
export async function missingTlsFiles(shell: Executor, end: MigrationEnd, daemonUri?: string): Promise<{ dir: string; missing: string[] }> {
  const files = libvirtdFiles(daemonUri);
  const conf = await shell.run('cat', [files.qemuConf], { allowFailure: true, timeoutMs: 20_000 });
  const dir = migrationTlsDir(conf.code === 0 ? conf.stdout : '');
  const missing: string[] = [];
  for (const f of TLS_FILES[end]) {
    const r = await shell.run('test', ['-r', files.path(`${dir}/${f}`)], { allowFailure: true, timeoutMs: 20_000 });
    if (r.code !== 0) missing.push(f);
  }
  return { dir, missing };
}
