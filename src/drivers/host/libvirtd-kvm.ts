import { readFile, stat } from 'node:fs/promises';

/**
 * How a running libvirt daemon sees /dev/kvm: the host's device itself, something else in its
 * place (kumo's mask, or systemd's InaccessiblePaths), or nothing.
 */
export type KvmView = 'device' | 'masked' | 'absent';

/** This machine's system libvirt daemons (monolithic libvirtd, or virtqemud where it is split). */
const SYSTEM_DAEMONS = [
  { pidFile: '/run/libvirtd.pid', comm: 'libvirtd' },
  { pidFile: '/run/virtqemud.pid', comm: 'virtqemud' },
] as const;

/** The pid of the system libvirt daemon that serves qemu:///system here, if one runs. */
export async function systemLibvirtdPid(): Promise<number | undefined> {
  for (const d of SYSTEM_DAEMONS) {
    const pid = Number((await readFile(d.pidFile, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    // A stale pid file may name a recycled pid: the process must be that daemon.
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm === d.comm) return pid;
  }
  return undefined;
}

/**
 * What process `pid` finds at /dev/kvm in its own mount namespace (/proc/PID/root goes through
 * it), compared with this machine's device.
 */
export async function kvmSeenBy(pid: number): Promise<KvmView> {
  const host = await stat('/dev/kvm').catch(() => undefined);
  const seen = await stat(`/proc/${pid}/root/dev/kvm`).catch(() => undefined);
  if (!seen) return 'absent';
  return host && seen.isCharacterDevice() && seen.rdev === host.rdev ? 'device' : 'masked';
}
