import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { buildSeed, cloudConfigText, nfsMountConfig } from '../../src/drivers/image/seed.js';
import { hashPassword } from '../../src/model/password.js';
import { sleep } from './env.js';

/** Runs an external validator on a document; returns its verdict and what it said. */
export async function validateWith(tool: string, args: (file: string) => string[], body: string, name = 'doc.xml') {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-validate-'));
  try {
    const file = join(dir, name);
    await writeFile(file, body);
    const r = await local.run(tool, args(file), { allowFailure: true });
    return { ok: r.code === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * nfs-ganesha has no check mode: this starts it on `config` in a network and mount namespace of
 * its own (its port 2049 and its state folders, /run/ganesha and /var/lib/nfs, are then private
 * to it, so a ganesha running on this machine is not disturbed), waits until it has initialised
 * (or died) and stops it. ok: it initialised and reported no configuration error. Needs root.
 */
export async function ganeshaDryStart(config: string): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-ganesha-'));
  const [conf, log] = [join(dir, 'ganesha.conf'), join(dir, 'ganesha.log')];
  await writeFile(conf, config);
  const child = spawn('unshare', ['--net', '--mount', '--propagation', 'private', 'sh', '-c',
    'for d in /run/ganesha /var/lib/nfs; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d" || exit 1; done; ' +
    'exec ganesha.nfsd -F -f "$1" -L "$2" -p "$3" -N NIV_EVENT', 'sh', conf, log, join(dir, 'ganesha.pid')], { stdio: 'ignore' });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  let ended = false;
  void exited.then(() => { ended = true; });
  const text = async () => (await readFile(log, 'utf8').catch(() => ''));
  try {
    for (let waited = 0; waited < 20_000 && !ended && !/NFS SERVER INITIALIZED/.test(await text()); waited += 100) await sleep(100);
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
  }
  const output = await text();
  await rm(dir, { recursive: true, force: true });
  const errors = output.split('\n').filter((l) => /config_errs_to_log|:CONFIG :(CRIT|MAJ|FATAL)|:FSAL :(CRIT|MAJ|FATAL)|:FATAL/.test(l));
  return { ok: /NFS SERVER INITIALIZED/.test(output) && !errors.length, output: errors.length ? errors.join('\n') : output };
}

export { virtXmlValidate } from '../../src/drivers/libvirt/validate.js';

export const cloudInitSchema = (userData: string) =>
  validateWith('cloud-init', (f) => ['schema', '-c', f], userData, 'user-data');

/**
 * cloud-init's own check of a network-config, where the installed cloud-init has one
 * (`--schema-type network-config`, newer than Debian 12's 22.4); undefined where it has not.
 */
export async function cloudInitNetworkSchema(networkConfig: string) {
  const help = await local.run('cloud-init', ['schema', '--help'], { allowFailure: true });
  if (!help.stdout.includes('--schema-type')) return undefined;
  return validateWith('cloud-init', (f) => ['schema', '--schema-type', 'network-config', '-c', f], networkConfig, 'network-config');
}

/**
 * Every kind of user-data kumo writes into a seed: password only, keys only, the user's own
 * cloud-config merged, and a datacenter group's (share mount + runcmd) merged.
 */
export function generatedUserData(): [string, string][] {
  const base = { instanceId: 'a1b2', hostname: 'web1', sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0 me@laptop'], nics: [{ mac: '52:54:00:aa:bb:cc' }] };
  const group = cloudConfigText(nfsMountConfig('10.5.3.10', '10.5.3.10:/site', '/srv/site'), { runcmd: ['httpd -p 8080 -h /srv/site'] },
    { write_files: [{ path: '/etc/motd', content: 'hi\n' }] });
  return [
    ['a password and a key', buildSeed({ ...base, rootPasswordHash: hashPassword('x') })['user-data']],
    ['a password only', buildSeed({ ...base, sshKeys: [], rootPasswordHash: hashPassword('y') })['user-data']],
    ['a key only', buildSeed(base)['user-data']],
    ["the user's cloud-config", buildSeed({ ...base, userData: '#cloud-config\nruncmd:\n  - [sh, -c, "echo hi > /var/www/hi"]\nwrite_files:\n  - path: /etc/motd\n    content: |\n      hello\n    permissions: "0644"\n' })['user-data']],
    ['a datacenter group', buildSeed({ ...base, rootPasswordHash: hashPassword('z'), userData: group })['user-data']],
    ['an empty datacenter group', buildSeed({ ...base, userData: cloudConfigText() })['user-data']],
  ];
}
