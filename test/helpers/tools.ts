import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { buildSeed, cloudConfigText, nfsMountConfig } from '../../src/drivers/image/seed.js';
import { hashPassword } from '../../src/model/password.js';

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
