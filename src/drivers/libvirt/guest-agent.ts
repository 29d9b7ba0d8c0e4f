import { KumoError } from '../../model/errors.js';
import type { Virsh } from './virsh.js';

/**
 * Whether the guest's QEMU guest agent answers a ping within `seconds` (libvirt's channel
 * org.qemu.guest_agent.0, which every kumo domain has). false when it does not (no agent in the
 * image, not started yet); libvirt's own failures are thrown.
 */
export async function agentPing(virsh: Virsh, domain: string, seconds = 2): Promise<boolean> {
  try {
    await virsh.run(['qemu-agent-command', '--timeout', String(seconds), domain, '{"execute":"guest-ping"}']);
    return true;
  } catch (e) {
    if (e instanceof KumoError && /guest agent|agent is not (connected|responding)|not responding|channel/i.test(e.message)) return false;
    throw e;
  }
}
