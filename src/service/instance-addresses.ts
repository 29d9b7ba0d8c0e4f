import { sleep } from '../exec/process.js';
import { waitingFor } from '../exec/waits.js';
import type { InstanceService } from './instances.js';

/** How long a new instance may take to get its DHCP addresses (a cloud image under software emulation: about a minute). */
export const ADDRESS_WAIT_MS = 90_000;

/**
 * Waits until every NIC of a running instance has its DHCP address, at most `timeoutMs`: a
 * Nova client reads ACTIVE as "its addresses are known" (OpenStack gives the fixed IP before the
 * guest boots; kumo learns it from the lease). True when they all have one; false when the time
 * is up or the instance is not running (a NIC on a network without kumo's DHCP never gets one).
 */
export async function waitForAddresses(instances: InstanceService, name: string, timeoutMs = ADDRESS_WAIT_MS): Promise<boolean> {
  return waitingFor(`instance "${name}" to get its DHCP address`, async () => {
    for (const deadline = Date.now() + timeoutMs; ; await sleep(1000)) {
      const inst = await instances.get(name);
      const leased = inst.nics.every((n) => n.ipv4 !== undefined);
      if (leased || inst.state !== 'running' || Date.now() >= deadline) return leased;
    }
  });
}
