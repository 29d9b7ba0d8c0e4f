import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, stringify } from 'yaml';
import { type Executor, local } from '../../exec/exec.js';
import { KumoError, invalid } from '../../model/errors.js';
import { CLOUD_CONFIG_LIST_KEYS, cloudConfigProblems } from '../../model/cloud-config.js';
import { readYaml } from '../../model/yaml-input.js';
import { finalMessageFor } from '../../model/guest-console.js';

/**
 * The NoCloud seed: the three files cloud-init (and the tiny image's init) read from a
 * filesystem labelled "cidata". Only keys that cloud-init has understood for years are used,
 * so the same seed works on old and new images.
 */
export interface SeedInput {
  instanceId: string;
  hostname: string;
  /** sha512-crypt hash of root's password ("$6$..."); plain text never leaves kumo. */
  rootPasswordHash?: string;
  sshKeys: string[];
  nics: { mac: string }[];
  /** The user's own #cloud-config, merged in. */
  userData?: string;
}

export interface SeedFiles {
  'meta-data': string;
  'user-data': string;
  'network-config': string;
}

export type CloudConfig = Record<string, unknown>;

/**
 * cloud-init reads its files with PyYAML, which speaks YAML 1.1: there an unquoted `on`, `yes`
 * or `off` is a boolean, and a MAC address of digits only (52:54:00:21:31:01) a base-60 number.
 * kumo reads the user's cloud-config as cloud-init will, and writes every file so that what it
 * means as a string is quoted for a 1.1 reader.
 */
const YAML_11 = { version: '1.1', lineWidth: 0 } as const;

export function buildSeed(s: SeedInput): SeedFiles {
  const ours: CloudConfig = {
    hostname: s.hostname,
    preserve_hostname: false,
    manage_etc_hosts: true,
    disable_root: false,
    ssh_pwauth: s.rootPasswordHash !== undefined,
    // Names the instance in the line kumo's readiness looks for on the console (model/guest-console.ts).
    final_message: finalMessageFor(s.instanceId),
  };
  // `users` with hashed_passwd sets root's password on every cloud-init from 0.7 to today;
  // chpasswd.list is deprecated since 22.3 and chpasswd.users is unknown before it.
  // lock_passwd must be false or cloud-init locks the password it has just set.
  const root: Record<string, unknown> = { name: 'root', lock_passwd: false };
  if (s.rootPasswordHash) root.hashed_passwd = s.rootPasswordHash;
  if (s.sshKeys.length) root.ssh_authorized_keys = s.sshKeys;
  ours.users = ['default', root];
  const merged = mergeCloudConfig(ours, s.userData === undefined ? {} : parseUserData(s.userData));
  return {
    'meta-data': stringify({ 'instance-id': s.instanceId, 'local-hostname': s.hostname }, YAML_11),
    'user-data': `#cloud-config\n${stringify(merged, YAML_11)}`,
    // set-name: renderers other than netplan (ifupdown's ENI on Debian 10/11, sysconfig on
    // CentOS 7) name the interface by the key, so the NIC is renamed to it; netplan does the same.
    'network-config': stringify({
      version: 2,
      ethernets: Object.fromEntries(s.nics.map((n, i) => [`nic${i}`, { match: { macaddress: n.mac }, 'set-name': `nic${i}`, dhcp4: true }])),
    }, YAML_11),
  };
}

/**
 * One #cloud-config from parts merged in order (their lists joined, the first part's other
 * keys kept), e.g. a datacenter file's instance group: its share mount, its runcmd, its user_data.
 */
export function cloudConfigText(...parts: CloudConfig[]): string {
  const doc = parts.reduce((acc, part) => mergeCloudConfig(acc, part), {});
  return Object.keys(doc).length ? `#cloud-config\n${stringify(doc, YAML_11)}` : '#cloud-config\n{}\n';
}

/**
 * An NFSv4.1 mount of a share: an fstab entry (`mounts`, which cloud-init of every version and
 * the tiny image write; both mount it again on every boot) and, on the first boot, a runcmd that
 * waits up to 30 s for it while DHCP and the server settle. POSIX sh: dash or busybox ash.
 */
export function nfsMountConfig(server: string, source: string, path: string): CloudConfig {
  return {
    mounts: [[source, path, 'nfs4', `vers=4.1,actimeo=1,addr=${server},_netdev,nofail`, '0', '0']],
    // /proc/mounts, not mountpoint(1): the tiny image's busybox has no such applet.
    runcmd: [`mkdir -p ${path}`, `i=0; until grep -q ' ${path} nfs' /proc/mounts || mount ${path}; do i=$((i+1)); [ $i -ge 30 ] && break; sleep 1; done`],
  };
}

/** Parses the user's user-data: it must be a #cloud-config YAML mapping. */
export function parseUserData(text: string): CloudConfig {
  if (!/^#cloud-config\s*$/m.test(text.split('\n')[0] ?? '')) {
    throw invalid('user-data must start with the line "#cloud-config"',
      'put "#cloud-config" on the first line of the file (scripts and MIME multi-part are not supported)');
  }
  const lines = new LineCounter();
  const parsed = readYaml(text, { kind: 'userData', what: 'user-data', lineCounter: lines, yaml: { ...YAML_11, prettyErrors: false } });
  const error = parsed.errors[0];
  if (error) {
    const at = lines.linePos(error.pos[0]);
    throw invalid(`user-data is not valid YAML: ${error.message.split('\n')[0]} at line ${at.line}, column ${at.col}`, 'fix the YAML syntax in the file');
  }
  let doc: unknown;
  try {
    doc = parsed.toJS();
  } catch (e) {
    // An alias bomb (more expansions than the library's maxAliasCount) or an unresolved alias.
    throw invalid(`user-data is not valid YAML: ${(e as Error).message.split('\n')[0]}`, 'fix the YAML syntax in the file');
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw invalid('user-data must be a YAML mapping (key: value lines) under #cloud-config', 'see the cloud-init examples');
  }
  const problems = cloudConfigProblems(doc as CloudConfig);
  if (problems.length) throw invalid(problems.map((p) => `user-data ${p.path.join('.')}: ${p.message}`).join('\n'), 'see the cloud-init examples');
  return doc as CloudConfig;
}

function mergeCloudConfig(ours: CloudConfig, theirs: CloudConfig): CloudConfig {
  const out: CloudConfig = { ...theirs, ...ours };
  // Lists are joined (kumo's entries first) rather than replaced.
  for (const key of CLOUD_CONFIG_LIST_KEYS) {
    const a = ours[key];
    const b = theirs[key];
    if (b !== undefined && !Array.isArray(b)) throw invalid(`user-data key "${key}" must be a list`);
    if (a === undefined && b === undefined) continue;
    const joined = [...((a as unknown[]) ?? []), ...((b as unknown[]) ?? [])];
    // "default" (the image's default user) need not appear twice.
    out[key] = key === 'users' ? joined.filter((u, i) => u !== 'default' || joined.indexOf(u) === i) : joined;
  }
  // The user's own settings win for everything kumo does not have to own.
  for (const key of ['ssh_pwauth', 'disable_root', 'manage_etc_hosts', 'final_message']) {
    if (theirs[key] !== undefined) out[key] = theirs[key];
  }
  return out;
}

/** Writes the seed as an ISO 9660 image labelled "cidata" (genisoimage, or xorriso's mkisofs). */
export async function writeSeedIso(files: SeedFiles, iso: string, workDir: string, exec: Executor = local): Promise<void> {
  const dir = join(workDir, 'seed');
  await mkdir(dir, { recursive: true });
  try {
    for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body, { mode: 0o600 });
    const args = ['-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', ...Object.keys(files).map((f) => join(dir, f))];
    try {
      await exec.run('genisoimage', args);
    } catch (e) {
      if (!(e instanceof KumoError && e.code === 'MISSING_DEPENDENCY')) throw e;
      await exec.run('xorriso', ['-as', 'mkisofs', ...args]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
