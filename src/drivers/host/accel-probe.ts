import { existsSync, realpathSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Executor, local } from '../../exec/exec.js';

export interface AccelResult {
  accel: 'kvm' | 'tcg';
  reason: string;
  probedAt: string;
  key: string;
}

/**
 * /dev/kvm can exist and still not work (nested virtualisation hangs on these hosts), so
 * kumo boots a 512-byte guest under KVM and waits for it to say it ran. The guest writes
 * to QEMU's isa-debug-exit port, which makes QEMU exit with status (1 << 1) | 1 = 3.
 */
function bootSector(): Buffer {
  const b = Buffer.alloc(512);
  // mov al, 1 ; out 0xf4, al ; hlt ; jmp $-1
  Buffer.from([0xb0, 0x01, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]).copy(b);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

async function bootsUnder(accel: 'kvm' | 'tcg', exec: Executor): Promise<{ ok: boolean; detail: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-probe-'));
  try {
    const disk = join(dir, 'boot.img');
    await writeFile(disk, bootSector());
    const args = ['-accel', accel, '-machine', 'pc', '-nodefaults', '-display', 'none', '-no-reboot',
      ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
      '-drive', `file=${disk},format=raw,if=ide`];
    const r = await exec.run('qemu-system-x86_64', args, { timeoutMs: 15_000, allowFailure: true })
      .catch((e: Error) => ({ code: -1, stderr: e.message, stdout: '' }));
    return r.code === 3
      ? { ok: true, detail: `a test guest ran under ${accel}` }
      : { ok: false, detail: (r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.code}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** QEMU's own version line ("QEMU emulator version 7.2.22 (Debian …)"): no libvirt needed. */
export async function qemuVersion(exec: Executor, timeoutMs = 15_000): Promise<string> {
  const r = await exec.run('qemu-system-x86_64', ['--version'], { timeoutMs });
  return r.stdout.split('\n')[0]?.trim() ?? 'unknown';
}

/**
 * The installed QEMU without running it (every create asks; `qemu-system-x86_64 --version` took
 * ~0.2 s of it): the binary's real path, size and modification time, which an upgrade changes.
 * Undefined when it is not on PATH: then asking for its version gives the clear error.
 */
function qemuBinaryIdentity(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').filter(Boolean)) {
    const file = join(dir, 'qemu-system-x86_64');
    try {
      const st = statSync(file);
      if (st.isFile()) return `${realpathSync(file)}:${st.size}:${st.mtimeMs}`;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * Probes once per QEMU build and kernel, then answers from the cache file. It needs QEMU
 * only, not libvirt, so the set-up can ask before it starts libvirtd (see needsKvmMask).
 */
export async function probeAccel(cacheFile: string, exec: Executor = local): Promise<AccelResult> {
  const key = `${qemuBinaryIdentity() ?? await qemuVersion(exec)}|${release()}|${existsSync('/dev/kvm')}`;
  try {
    const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as AccelResult;
    if (cached.key === key) return cached;
  } catch {
    // no cache yet
  }
  let result: AccelResult;
  if (!existsSync('/dev/kvm')) {
    result = { accel: 'tcg', reason: '/dev/kvm is absent: guests run in software emulation (TCG)', probedAt: new Date().toISOString(), key };
  } else {
    const kvm = await bootsUnder('kvm', exec);
    result = kvm.ok
      ? { accel: 'kvm', reason: kvm.detail, probedAt: new Date().toISOString(), key }
      : { accel: 'tcg', reason: `/dev/kvm exists but a test guest failed under KVM (${kvm.detail}): using software emulation (TCG)`,
          probedAt: new Date().toISOString(), key };
  }
  await writeFile(cacheFile, JSON.stringify(result, null, 2));
  return result;
}

/**
 * Whether libvirtd must not see /dev/kvm: it exists but does not work. Such a libvirtd judges
 * its cached QEMU capabilities stale at every lookup and probes QEMU again under software
 * emulation, so each define takes 30-110 s (docs/decisions.md, "libvirtd without a broken /dev/kvm").
 */
export function needsKvmMask(accel: AccelResult): boolean {
  return accel.accel === 'tcg' && existsSync('/dev/kvm');
}
