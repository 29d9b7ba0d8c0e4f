import { type Executor, local } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';
import { bridgeMac } from './netns.js';

export interface HostLink {
  name: string;
  /** 'bridge', 'veth', 'openvswitch', ... or undefined for plain devices. */
  kind?: string;
}

export interface HostAddress {
  link: string;
  address: string;
  prefix: number;
}

/** The host's network devices and addresses, read with iproute2's JSON output. */
export class HostLinks {
  constructor(private readonly exec: Executor = local) {}

  async list(): Promise<HostLink[]> {
    const out = (await this.exec.run('ip', ['-d', '-j', 'link', 'show'])).stdout;
    return (JSON.parse(out) as { ifname: string; linkinfo?: { info_kind?: string } }[])
      .map((l) => ({ name: l.ifname, ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}) }));
  }

  async addresses(): Promise<HostAddress[]> {
    const out = (await this.exec.run('ip', ['-4', '-j', 'addr', 'show'])).stdout;
    return (JSON.parse(out) as { ifname: string; addr_info?: { local: string; prefixlen: number }[] }[])
      .flatMap((l) => (l.addr_info ?? []).map((a) => ({ link: l.ifname, address: a.local, prefix: a.prefixlen })));
  }

  /** With a MAC of its own, which guests' taps coming and going never change (netns.ts, bridgeMac). */
  async createBridge(name: string): Promise<void> {
    await this.exec.run('ip', ['link', 'add', name, 'address', bridgeMac(), 'type', 'bridge']);
    await this.exec.run('ip', ['link', 'set', name, 'up']);
  }

  async remove(name: string): Promise<void> {
    await this.exec.run('ip', ['link', 'del', name], { allowFailure: true });
  }
}

/**
 * Open vSwitch bridges. Hosts without the OVS kernel module (containers, these test machines)
 * use the userspace datapath (datapath_type=netdev), which works without it.
 */
export class OvsBridges {
  constructor(private readonly exec: Executor = local) {}

  async available(): Promise<boolean> {
    const r = await this.exec.run('ovs-vsctl', ['--timeout=5', 'show'], { allowFailure: true })
      .catch((e: unknown) => (e instanceof KumoError ? { code: 127 } : Promise.reject(e)));
    return r.code === 0;
  }

  async exists(name: string): Promise<boolean> {
    const r = await this.exec.run('ovs-vsctl', ['--timeout=5', 'br-exists', name], { allowFailure: true });
    return r.code === 0;
  }

  async create(name: string, userspace: boolean): Promise<void> {
    await this.exec.run('ovs-vsctl', ['--timeout=10', 'add-br', name,
      ...(userspace ? ['--', 'set', 'bridge', name, 'datapath_type=netdev'] : [])]);
    await this.exec.run('ip', ['link', 'set', name, 'up'], { allowFailure: true });
  }

  async remove(name: string): Promise<void> {
    await this.exec.run('ovs-vsctl', ['--timeout=10', '--if-exists', 'del-br', name]);
  }
}
