import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Context } from './context.js';
import { InstanceService } from './instances.js';
import { domainOf } from './domains.js';
import { local, type OpenedProcess } from '../exec/exec.js';
import { NetnsExecutor } from '../exec/netns.js';
import { executorFor, type ShellSpec } from '../exec/shells.js';
import { attachSerialConsole, openSerialConsole, openVncViewer } from '../drivers/libvirt/console.js';
import { invalid } from '../model/errors.js';
import type { Instance } from '../model/types.js';
import { machineActor } from '../model/actor.js';

export type { OpenedProcess } from '../exec/exec.js';

/**
 * Where an instance's VNC server listens: QEMU's unix socket (a path, in a folder only root and
 * QEMU may enter), or for an instance defined before that, "127.0.0.1:PORT", possibly inside a
 * lab hypervisor's network namespace.
 */
export interface VncTarget {
  vnc: string;
  vncNetns?: string;
  /** The ssh login of the host whose kernel holds the socket (a shared filesystem does not share sockets). */
  viaSsh?: ShellSpec;
}

/** Where an instance's serial console is: the libvirt that runs it (virsh console connects there), and its domain's UUID. */
export interface SerialTarget {
  uri: string;
  domain: string;
}

export interface TerminalSize {
  cols: number;
  rows: number;
}

/**
 * The consoles of an instance, for every face: the CLI opens a viewer or hands its terminal to
 * the serial console; the API relays both to the browser over WebSockets.
 */
export class ConsoleService {
  constructor(private readonly ctx: Context) {}

  /** In its own project: root's console commands reach every instance, the API's tickets check the caller's project first. */
  private instance(name: string) {
    return new InstanceService(this.ctx, machineActor(this.ctx.instances.get(name)?.project)).get(name);
  }

  /** Where a running instance's VNC listens; `startFix` tells the caller's user how to start it. */
  async vncTarget(name: string, startFix: string): Promise<VncTarget> {
    const inst = await this.instance(name);
    if (!inst.vnc) throw invalid(`instance "${name}" has no VNC display now (state ${inst.state})`, startFix);
    const shell = this.ctx.hosts.get(inst.host)?.shell;
    return { vnc: inst.vnc, ...(inst.vncNetns ? { vncNetns: inst.vncNetns } : {}), ...(shell?.kind === 'ssh' ? { viaSsh: shell } : {}) };
  }

  /** The libvirt of a running instance, for its serial console; `startFix` as for vncTarget. */
  async serialTarget(name: string, startFix: string): Promise<SerialTarget> {
    const inst = await this.instance(name); // 404 for an unknown instance
    if (inst.state !== 'running') throw invalid(`instance "${name}" has no serial console now (state ${inst.state})`, startFix);
    const { virsh, id } = domainOf(this.ctx, name);
    return { uri: virsh.uri, domain: id };
  }

  /** Hands this process's terminal to the instance's serial console until the user detaches; virsh's exit code. */
  attachSerial(name: string): Promise<number> {
    const { virsh, id } = domainOf(this.ctx, name);
    return attachSerialConsole(virsh.uri, id);
  }
}

/**
 * A VNC viewer window on this machine; its name, or undefined without a display or a viewer.
 * A viewer here cannot reach a VNC port inside a lab node's namespace: none for those.
 */
export function openViewer(inst: Pick<Instance, 'vnc' | 'vncNetns'>): string | undefined {
  return inst.vnc && !inst.vncNetns ? openVncViewer(inst.vnc) : undefined;
}

/**
 * A byte stream to an instance's VNC server: its unix socket (on a host reached over ssh,
 * socat's stdin and stdout there); for an instance defined before, a TCP connection to
 * 127.0.0.1:PORT, or inside a network namespace (a lab hypervisor's VNC listens on that
 * namespace's loopback) socat's stdin and stdout there. Destroying the stream closes the connection.
 */
export async function connectVnc(target: VncTarget): Promise<Duplex> {
  if (target.vnc.startsWith('/')) {
    if (!target.viaSsh) return connect({ path: target.vnc });
    return fromProcess(await executorFor(target.viaSsh).open('socat', ['-', `UNIX-CONNECT:${target.vnc}`]), 'ssh/socat');
  }
  const port = Number(/^127\.0\.0\.1:(\d+)$/.exec(target.vnc)?.[1]);
  if (!(port > 0 && port < 65_536)) throw new Error(`unexpected VNC address ${target.vnc}`);
  const netns = target.vncNetns;
  if (!netns) return connect({ host: '127.0.0.1', port });
  if (!/^[A-Za-z0-9_.-]+$/.test(netns)) throw invalid(`unexpected network namespace name "${netns}"`);
  return fromProcess(await new NetnsExecutor(netns).open('socat', ['-', `TCP:127.0.0.1:${port}`]), 'nsenter/socat');
}

/** A relaying process's stdin and stdout; its failure ends the stream with what it said. */
function fromProcess(proc: OpenedProcess, what: string): Duplex {
  void proc.exit.then(({ code, stderr }) => {
    if (code && code !== 0) proc.stream.destroy(new Error(`${what} exited ${code}: ${stderr.trim().slice(0, 200)}`));
  });
  return proc.stream;
}

/** The instance's serial console (virsh console) in a pseudo-terminal, for a program to drive. */
export function openSerial(target: SerialTarget, size: TerminalSize): Promise<OpenedProcess> {
  return openSerialConsole(local, target.uri, target.domain, size);
}
