import assert from 'node:assert/strict';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { local, type Executor, type RunResult } from '../../src/exec/exec.js';
import { runCli, type TestEnv } from './env.js';
import { Terminal } from './pty.js';

/**
 * What the Debian cloud image's test needs beside its boots: the tools of `kumo image build
 * debian-12`, the checks of the image file itself, ssh with a key and a root login on the
 * serial console.
 */

const GiB = 1024 ** 3;

/** The tools a Debian build and its checks need that this machine lacks (one per line; empty: none). */
export async function missingDebianTools(): Promise<string> {
  return (await local.run('sh', ['-c', 'for t; do command -v "$t" >/dev/null || echo "$t"; done', 'sh',
    'mmdebstrap', 'extlinux', 'sfdisk', 'mke2fs', 'debugfs', 'losetup', 'qemu-img', 'virsh', 'ssh', 'ssh-keygen'],
  { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } })).stdout.trim();
}

/**
 * The image file as built: one bootable MBR partition ending at the disk's end (growable),
 * extlinux with a serial console, and no identity of its build (hostname, machine-id, ssh host
 * keys, cloud-init's state); then `kumo image import` of that file. It reads the image, not an
 * instance's overlay, so it runs while guests boot. Returns the seconds it took.
 */
export async function checkDebianDisk(env: TestEnv, dir: string, disk: string): Promise<number> {
  const started = Date.now();
  const raw = join(dir, 'disk.raw');
  await local.run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', disk, raw], { timeoutMs: 600_000 });
  const table = JSON.parse((await local.run('sfdisk', ['--json', raw])).stdout) as
    { partitiontable: { label: string; partitions: { start: number; size: number; bootable?: boolean }[] } };
  assert.equal(table.partitiontable.label, 'dos');
  assert.equal(table.partitiontable.partitions.length, 1, 'one partition: the root filesystem');
  const [p1] = table.partitiontable.partitions;
  assert.equal(p1!.start, 2048);
  assert.equal((p1!.start + p1!.size) * 512, 3 * GiB, 'the root partition ends at the end of the disk (growable)');
  assert.equal(p1!.bootable, true);
  const mbr = Buffer.alloc(512);
  const fh = await open(raw, 'r');
  await fh.read(mbr, 0, 512, 0).finally(() => fh.close());
  assert.ok(mbr.subarray(0, 440).some((b) => b !== 0), 'boot code in the MBR');
  const fs = `${raw}?offset=1048576`;
  const debugfs = async (cmd: string) => (await local.run('debugfs', ['-R', cmd, fs], { allowFailure: true })).stdout;
  assert.equal((await debugfs('cat /etc/hostname')).trim(), 'localhost', 'no build hostname');
  assert.match(await debugfs('stat /etc/machine-id'), /Size: 0\b/, 'empty machine-id');
  assert.doesNotMatch(await debugfs('ls /etc/ssh'), /ssh_host_/, 'no ssh host keys');
  assert.match(await debugfs('ls /boot/extlinux'), /ldlinux\.sys/, 'extlinux is installed');
  assert.match(await debugfs('cat /boot/extlinux/extlinux.conf'), /console=ttyS0/);
  assert.doesNotMatch(await debugfs('ls /var/lib'), /\bcloud\b/, 'cloud-init never ran on the image');
  await rm(raw, { force: true });

  const kumo = (args: string[]) => runCli(args, { env: env.cliEnv, allowFailure: true, timeoutMs: 600_000 });
  const imported = await kumo(['image', 'import', `${env.prefix}imp`, disk, '--os', 'Debian 12 copy']);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match(imported.stdout, /qcow2, 3 GiB/, 'qemu-img info found format and size');
  assert.equal((await kumo(['image', 'delete', `${env.prefix}imp`])).code, 0);
  return (Date.now() - started) / 1000;
}

/** ssh as root with one key only (no password, no agent), from `from` (a lab node reaches its guests' networks). */
export function sshAsRoot(key: string, from: Executor = local) {
  return (ip: string, cmd: string, timeoutMs = 120_000, input?: string): Promise<RunResult> => from.run('ssh', [
    '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'PasswordAuthentication=no',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10',
    '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3', '-o', 'LogLevel=ERROR', `root@${ip}`, cmd,
  ], { allowFailure: true, timeoutMs, ...(input !== undefined ? { input } : {}) });
}

/**
 * Root's password login on a guest's serial console (`virsh console` in a real terminal), as a
 * person would; `run` then types a command there and returns what it printed.
 */
export async function consoleLogin(uri: string, name: string, password: string) {
  const term = new Terminal('virsh', ['-c', uri, 'console', '--force', name], { ...process.env, TERM: 'xterm' });
  let at = 0;
  try {
    at = await term.expect(/Escape character/, 30_000);
    term.write('\r');
    at = await term.expect(new RegExp(`${name} login: $`), 60_000, at);
    await term.answer('root');
    at = await term.expect(/Password: $/, 60_000, at);
    await term.answer(password);
    at = await term.expect(new RegExp(`root@${name}:~# $`), 120_000, at);
  } catch (e) {
    term.kill();
    throw e;
  }
  return {
    term,
    async run(cmd: string, timeoutMs = 60_000): Promise<string> {
      // The markers are printed by printf, so the echoed command line does not match them.
      await term.answer(`printf '@@%s\\n' B; ${cmd}; printf '@@%s\\n' E`);
      const end = await term.expect(/@@E\n/, timeoutMs, at);
      const out = term.screen.slice(at, end);
      at = end;
      return out.slice(out.indexOf('@@B\n') + 4, out.lastIndexOf('@@E\n'));
    },
  };
}

/**
 * Several commands over one ssh connection (each connection costs seconds of key exchange in a
 * TCG guest): each one's output, exactly, and exit code, by the key it was given.
 */
export async function runEach<K extends string>(ssh: (cmd: string) => Promise<RunResult>, cmds: Record<K, string>): Promise<Record<K, { out: string; code: number }>> {
  const keys = Object.keys(cmds) as K[];
  // Markers printed by printf around each command's output; a subshell keeps one's exit from ending the rest.
  const script = keys.map((k, i) => `printf '@@<%s>@@' ${i}; (${cmds[k]}); printf '@@</%s:%s>@@' ${i} $?`).join('; ');
  const r = await ssh(script);
  const result = {} as Record<K, { out: string; code: number }>;
  keys.forEach((k, i) => {
    const m = new RegExp(`@@<${i}>@@([\\s\\S]*?)@@</${i}:(\\d+)>@@`).exec(r.stdout);
    assert.ok(m, `no answer to ${cmds[k]} (ssh exit ${r.code}): ${r.stderr}`);
    result[k] = { out: m[1]!, code: Number(m[2]) };
  });
  return result;
}
