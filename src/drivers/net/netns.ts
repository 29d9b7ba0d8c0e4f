import { randomBytes } from 'node:crypto';
import { type Executor, local } from '../../exec/exec.js';
import { NetnsExecutor } from '../../exec/netns.js';

/** A random unicast, locally administered MAC (02:…): set explicitly, so the kernel never replaces it. */
export function bridgeMac(): string {
  const b = randomBytes(6);
  b[0] = 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Network namespaces of this machine and the links between them: what the lab's nodes and
 * switches are made of (HOST-NOTES: building a few namespaces on bridges takes ~0.1 s).
 */
export class Namespaces {
  constructor(private readonly exec: Executor = local) {}

  async list(): Promise<string[]> {
    const out = (await this.exec.run('ip', ['-j', 'netns', 'list'])).stdout.trim();
    return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
  }

  /**
   * Creates the namespace with its loopback up; an existing one is kept. A new namespace does not
   * route: it would inherit the machine's IPv4 forwarding (on wherever libvirt's NAT runs), and a
   * lab node that forwards lets an outside with a route past the LB. A router (the edge) turns it on.
   */
  async ensure(name: string): Promise<void> {
    if (!(await this.list()).includes(name)) {
      await this.exec.run('ip', ['netns', 'add', name]);
      await this.exec.run('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    }
    await this.exec.run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  async remove(name: string): Promise<void> {
    await this.exec.run('ip', ['netns', 'del', name], { allowFailure: true });
  }

  /** Processes whose network namespace is this one (they keep it alive after `ip netns del`). */
  async pids(name: string): Promise<number[]> {
    const r = await this.exec.run('ip', ['netns', 'pids', name], { allowFailure: true });
    return r.code === 0 ? r.stdout.split('\n').map(Number).filter((p) => p > 1) : [];
  }

  /** A veth pair from namespace A to namespace B (both ends up); an existing end is kept. */
  async veth(a: { netns: string; name: string }, b: { netns: string; name: string }): Promise<void> {
    if (!(await this.linkExists(a.netns, a.name))) {
      await this.exec.run('ip', ['-n', a.netns, 'link', 'add', a.name, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.netns]);
    }
    await this.exec.run('ip', ['-n', a.netns, 'link', 'set', a.name, 'up']);
    await this.exec.run('ip', ['-n', b.netns, 'link', 'set', b.name, 'up']);
  }

  /**
   * A Linux bridge in a namespace, STP off (a lab switch forwards at once), up, with a MAC of its
   * own. Without one the kernel gives a bridge the lowest MAC of its ports, and changes it as ports
   * come and go: a hypervisor's bridge then wears a guest tap's MAC (libvirt's fe:54:00:…, lower
   * than a random veth MAC in ~1 lab of 100), and a live migration's incoming tap with that same
   * MAC on the destination swallowed the destination's ARP reply: "No route to host" (EHOSTUNREACH).
   */
  async bridge(netns: string, name: string): Promise<void> {
    if (!(await this.linkExists(netns, name))) {
      await this.exec.run('ip', ['-n', netns, 'link', 'add', name, 'address', bridgeMac(), 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    }
    await this.exec.run('ip', ['-n', netns, 'link', 'set', name, 'up']);
  }

  async enslave(netns: string, link: string, bridge: string): Promise<void> {
    await this.exec.run('ip', ['-n', netns, 'link', 'set', link, 'master', bridge]);
  }

  /** Sets ADDRESS/PREFIX on a link (replacing the same address is harmless). */
  async address(netns: string, link: string, cidr: string): Promise<void> {
    await this.exec.run('ip', ['-n', netns, 'addr', 'replace', cidr, 'dev', link]);
  }

  async linkExists(netns: string, name: string): Promise<boolean> {
    return (await this.exec.run('ip', ['-n', netns, 'link', 'show', name], { allowFailure: true })).code === 0;
  }

  shell(netns: string): NetnsExecutor {
    return new NetnsExecutor(netns, this.exec);
  }
}
