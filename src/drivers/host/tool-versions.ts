import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { local, type Executor } from '../../exec/exec.js';
import { which } from './which.js';
import { qemuVersion } from './accel-probe.js';
import { Virsh } from '../libvirt/virsh.js';
import { WAF_MODULE_PATHS } from '../daemons/nginx-waf/system-files.js';

/**
 * The versions of the programs kumo drives, as this machine has them (`kumo version`). Each
 * probe runs the program's own version flag with a short timeout; a program that is missing or
 * does not answer is said so, never an error.
 */
export interface ToolVersion {
  name: string;
  /** The version, or undefined when the tool is not installed or did not answer. */
  version?: string;
  /** "not installed", "no answer", or more about what was found (a path, the hypervisor). */
  detail?: string;
}

/** A probe answers within this (virsh's connection, a daemon's --version): a slow tool is "no answer". */
export const PROBE_TIMEOUT_MS = 3_000;

const NOT_INSTALLED = 'not installed';

/** Runs `tool args` if it is installed and reads its version from stdout and stderr (nginx prints to stderr). */
async function versionOf(name: string, tool: string, args: string[], pattern: RegExp, exec: Executor): Promise<ToolVersion> {
  const file = which(tool);
  if (!file) return { name, detail: NOT_INSTALLED };
  try {
    const r = await exec.run(file, args, { timeoutMs: PROBE_TIMEOUT_MS, allowFailure: true });
    const version = pattern.exec(`${r.stdout}\n${r.stderr}`)?.[1];
    return version ? { name, version, detail: file } : { name, detail: `${file} did not say its version (exit ${r.code})` };
  } catch (e) {
    return { name, detail: `${file} did not answer: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** The libvirt library virsh runs with, asked of libvirt's test driver (in the library: no daemon needed). */
async function libvirtLibrary(exec: Executor): Promise<ToolVersion> {
  const name = 'libvirt library';
  const file = which('virsh');
  if (!file) return { name, detail: `${NOT_INSTALLED} (no virsh)` };
  try {
    const v = await new Virsh('test:///default', exec).version(PROBE_TIMEOUT_MS);
    return v.libvirt === 'unknown' ? { name, detail: 'virsh did not say it' } : { name, version: v.libvirt, detail: `as used by ${file}` };
  } catch (e) {
    return { name, detail: `virsh did not answer: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** The libvirtd answering on `uri`, else the installed libvirtd's own version, saying it does not answer. */
async function libvirtDaemon(uri: string, exec: Executor): Promise<ToolVersion> {
  try {
    const v = await new Virsh(uri, exec).version(PROBE_TIMEOUT_MS, true);
    if (v.daemon) return { name: 'libvirt daemon', version: v.daemon, detail: `answering on ${uri} (hypervisor ${v.hypervisor})` };
  } catch {
    // not running, or no virsh: say what is installed
  }
  const installed = await versionOf('libvirt daemon', 'libvirtd', ['--version'], /libvirt\)?\s+(\d\S*)/, exec);
  if (!installed.version) return installed;
  return { ...installed, detail: `${installed.detail ?? 'libvirtd'}, not answering on ${uri}` };
}

async function qemu(exec: Executor): Promise<ToolVersion> {
  const file = which('qemu-system-x86_64');
  if (!file) return { name: 'QEMU', detail: NOT_INSTALLED };
  try {
    const line = await qemuVersion(exec, PROBE_TIMEOUT_MS);
    const version = /version (\S+)/.exec(line)?.[1];
    return version ? { name: 'QEMU', version, detail: line } : { name: 'QEMU', detail: `${file} said "${line}"` };
  } catch (e) {
    return { name: 'QEMU', detail: `${file} did not answer: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** A Debian package's version (the nginx module says none of its own), or undefined without dpkg. */
async function packageVersion(pkg: string, exec: Executor): Promise<string | undefined> {
  if (!which('dpkg-query')) return undefined;
  const r = await exec.run('dpkg-query', ['-W', '-f=${Status}|${Version}', pkg], { timeoutMs: PROBE_TIMEOUT_MS, allowFailure: true }).catch(() => undefined);
  const [status, version] = (r?.code === 0 ? r.stdout : '').split('|');
  return status?.endsWith(' installed') && version ? version : undefined;
}

async function modsecurityModule(exec: Executor): Promise<ToolVersion> {
  const name = 'nginx ModSecurity module';
  const file = WAF_MODULE_PATHS.find((p) => existsSync(p));
  if (!file) return { name, detail: NOT_INSTALLED };
  const version = await packageVersion('libnginx-mod-http-modsecurity', exec);
  return version ? { name, version, detail: file } : { name, detail: `${file} (version unknown)` };
}

const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/usr/local/modsecurity/lib'];

/** libmodsecurity's version from its file name (libmodsecurity.so.3 -> libmodsecurity.so.3.0.9): no tool needed. */
function modsecurityLibrary(): ToolVersion {
  const name = 'ModSecurity library';
  for (const dir of LIB_DIRS) {
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => /^libmodsecurity\.so\.\d+$/.test(f));
    } catch {
      continue;
    }
    for (const f of files) {
      const real = basename(realpathSync(join(dir, f)));
      const version = /\.so\.(\d+(?:\.\d+)+)$/.exec(real)?.[1];
      return { name, ...(version ? { version } : {}), detail: join(dir, real) };
    }
  }
  return { name, detail: NOT_INSTALLED };
}

/** Every tool's version, all probed at once: the slowest probe (PROBE_TIMEOUT_MS at most) is the wait. */
export function toolVersions(uri: string, exec: Executor = local): Promise<ToolVersion[]> {
  return Promise.all([
    libvirtLibrary(exec),
    libvirtDaemon(uri, exec),
    qemu(exec),
    versionOf('HAProxy', 'haproxy', ['-v'], /HAProxy version (\S+)/, exec),
    versionOf('nginx', 'nginx', ['-v'], /nginx\/(\S+)/, exec),
    modsecurityModule(exec),
    Promise.resolve(modsecurityLibrary()),
    versionOf('nfs-ganesha', 'ganesha.nfsd', ['-v'], /Release = V?(\S+)/, exec),
  ]);
}
