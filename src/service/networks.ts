import type { Context } from './context.js';
import { buildNetworkXml, type NetworkSpec } from '../drivers/libvirt/network-xml.js';
import { KumoError } from '../model/errors.js';

/** The networks every kumo host has out of the box (the course's default NAT). */
export const BUILTIN_NETWORKS: Record<string, NetworkSpec> = {
  default: {
    name: 'default', mode: 'nat', bridge: 'virbr0',
    ipv4: { address: '192.168.122.1', prefix: 24, dhcp: { start: '192.168.122.2', end: '192.168.122.254' } },
  },
};

export class NetworkService {
  constructor(private readonly ctx: Context) {}

  /**
   * Makes sure a network an instance asks for is defined and running. Built-in networks
   * are created on first use; any other must exist already.
   */
  async ensureUsable(name: string): Promise<void> {
    const v = this.ctx.virsh;
    let net = (await v.listNetworks()).find((n) => n.name === name);
    if (!net) {
      const builtin = BUILTIN_NETWORKS[name];
      if (!builtin) {
        throw new KumoError('NOT_FOUND', `network "${name}" is not defined yet`,
          `create it first (e.g. \`virsh net-define FILE.xml && virsh net-start ${name}\`), or use --network default`);
      }
      await v.defineNetwork(buildNetworkXml(builtin));
      await v.autostartNetwork(name);
      net = { name, active: false, autostart: true, persistent: true };
    }
    if (!net.active) await v.startNetwork(name);
  }
}
