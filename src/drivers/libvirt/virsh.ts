import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libvirtCallTimeoutMs } from '../../config.js';
import { type Executor, local } from '../../exec/exec.js';
import { WAIT_EVERY_MS, WAIT_FIRST_MS } from '../../exec/waits.js';
import { KumoError } from '../../model/errors.js';
import type { RuntimeState } from '../../model/types.js';
import { dhcpLeasesOver, domainStateOver, dumpXmlOver, listDomainsOver, listNetworksOver, networkXmlOver, nodeInfoOver, protocolLooksUp } from './protocol-reads.js';
import { countNwFilters } from './rpc/domain-writes.js';
import { defineOver, destroyOver, domainToRemove, rebootOver, shutdownOver, snapshotCountOver, startOver, stopForRemoval, undefineForRemoval } from './protocol-writes.js';
import type { LibvirtConnection } from './rpc/connection.js';

export interface DomainListing {
  name: string;
  /** The key kumo addresses its own domains by: a name can be taken over, a UUID cannot. */
  uuid: string;
  state: RuntimeState;
}

export interface DhcpLease {
  mac: string;
  ipv4: string;
  hostname?: string;
}

export interface NetworkListing {
  name: string;
  active: boolean;
  autostart: boolean;
  persistent: boolean;
}

/** A libvirt call that has been waiting a while: told after SLOW_FIRST_MS, then every SLOW_EVERY_MS. */
export interface SlowCall {
  uri: string;
  /** What kumo asked, as a person reads it: "define", "start web1". */
  call: string;
  elapsedMs: number;
  /** What such a wait usually means, where kumo knows. */
  hint?: string;
}
export type SlowCallListener = (notice: SlowCall) => void;

/** The same bar as every other wait (exec/waits.ts): over 2 s, a call says what it waits for. */
const SLOW_FIRST_MS = WAIT_FIRST_MS;
/** Calls that answer at once on a working libvirtd (ping, nodeinfo): 10 s, or the shorter call timeout. */
const QUICK_CALL_MS = (): number => Math.min(10_000, libvirtCallTimeoutMs());
const SLOW_EVERY_MS = WAIT_EVERY_MS;
/** Calls that make libvirt look at QEMU's capabilities, which it may probe again first. */
const CAPABILITY_CALLS = new Set(['define', 'create', 'start', 'domcapabilities', 'capabilities']);

/**
 * A thin, typed client over `virsh`. Each call is one argument array: no shell, and XML
 * reaches libvirt through a file, never through the command line. A call that waits long
 * tells `onSlow` what it waits for. Given the host's protocol connection (rpc/, for the URIs it
 * speaks), the reads list, show and plan lean on (listDomains, domainState, dumpXml, dhcpLeases,
 * nodeInfo, listNetworks) and the domain lifecycle writes (define, start, shutdown, reboot,
 * destroy, removeDomain) go over it instead, with the same answers, errors and slow-call
 * notices; everything else stays on virsh.
 */
export class Virsh {
  /** `hostOf`: the registered host this libvirt is, for messages (asked when one is written). */
  constructor(readonly uri: string, private readonly exec: Executor = local, private readonly onSlow?: SlowCallListener,
    private readonly hostOf?: () => string | undefined, readonly protocol?: LibvirtConnection) {}

  /** The registered host this libvirt is, if any. */
  hostName(): string | undefined {
    return this.hostOf?.();
  }

  /** Who answers here, as a message names it: `libvirtd of host "kvm2" (URI)`, or `libvirt at URI`. */
  describe(): string {
    const host = this.hostName();
    return host ? `libvirtd of host "${host}" (${this.uri})` : `libvirt at ${this.uri}`;
  }

  /** `about` tells calls apart whose arguments look alike in a wait or an error, e.g. "NIC 52:54:…". */
  async run(args: string[], timeoutMs = libvirtCallTimeoutMs(), about?: string): Promise<string> {
    const call = describeCall(args) + (about ? ` (${about})` : '');
    const stopWatch = this.watchSlow(args, call);
    try {
      const r = await this.exec.run('virsh', ['-q', '-c', this.uri, ...args], { timeoutMs });
      return r.stdout;
    } catch (e) {
      throw libvirtError(e, this, call, timeoutMs);
    } finally {
      stopWatch();
    }
  }

  /** Tells onSlow about a call still waiting after SLOW_FIRST_MS, then every SLOW_EVERY_MS; returns the stop. */
  private watchSlow(args: string[], call: string): () => void {
    const started = Date.now();
    const tell = () => this.onSlow?.({
      uri: this.uri, call, elapsedMs: Date.now() - started,
      ...(CAPABILITY_CALLS.has(args[0] ?? '') ? { hint: 'libvirt may be probing QEMU\'s capabilities; if every define is this slow, `kumo host info` checks why' } : {}),
    });
    let timer: NodeJS.Timeout | undefined;
    if (this.onSlow) {
      timer = setTimeout(function again() {
        tell();
        timer = setTimeout(again, SLOW_EVERY_MS);
      }, SLOW_FIRST_MS);
    }
    return () => clearTimeout(timer);
  }

  /**
   * One read over the protocol connection, bounded like run() (the connection's own limit is
   * KUMO_LIBVIRT_TIMEOUT; a shorter one is kept here), reported when slow like run(), and its
   * errors worded as virsh's (protocolError below): callers and their tests see no difference.
   */
  private async overProtocol<T>(c: LibvirtConnection, args: string[], timeoutMs: number, read: () => Promise<T>): Promise<T> {
    const call = describeCall(args);
    const wasOpen = c.connected;
    // A connection that reports its slow calls itself is not watched twice.
    const stopWatch = c.reportsSlowCalls ? () => undefined : this.watchSlow(args, call);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KumoError('TIMEOUT', `${call} took longer than ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([read(), late]);
    } catch (e) {
      throw protocolError(e, this, call, timeoutMs, wasOpen);
    } finally {
      clearTimeout(timer);
      stopWatch();
    }
  }

  /** Like run(), but a "not found" answer becomes undefined instead of an error. */
  private async maybe(args: string[], timeoutMs?: number): Promise<string | undefined> {
    try {
      return await this.run(args, timeoutMs);
    } catch (e) {
      if (e instanceof KumoError && /failed to get (domain|network)|Domain not found|Network not found|no domain with matching/i.test(e.message)) {
        return undefined;
      }
      throw e;
    }
  }

  /** `withDaemon`: also the version of the libvirtd answering on this URI (virsh version --daemon). */
  async version(timeoutMs?: number, withDaemon = false): Promise<{ libvirt: string; hypervisor: string; daemon?: string }> {
    const out = await this.run(['version', ...(withDaemon ? ['--daemon'] : [])], timeoutMs);
    const daemon = /Running against daemon: (\S+)/.exec(out)?.[1];
    return {
      libvirt: /Using library: libvirt (\S+)/.exec(out)?.[1] ?? 'unknown',
      hypervisor: /Running hypervisor: (.+)/.exec(out)?.[1]?.trim() ?? 'unknown',
      ...(daemon ? { daemon } : {}),
    };
  }

  async ping(): Promise<boolean> {
    try {
      await this.run(['uri'], QUICK_CALL_MS());
      return true;
    } catch {
      return false;
    }
  }

  /** CPUs and memory of the hypervisor (virsh nodeinfo); HA's heartbeat asks it with a short `timeoutMs`. */
  async nodeInfo(timeoutMs = QUICK_CALL_MS()): Promise<{ cpus: number; memoryMiB: number }> {
    const c = this.protocol;
    if (c) return this.overProtocol(c, ['nodeinfo'], timeoutMs, () => nodeInfoOver(c));
    const out = await this.run(['nodeinfo'], timeoutMs);
    const cpus = Number(/CPU\(s\):\s+(\d+)/.exec(out)?.[1]);
    const kib = Number(/Memory size:\s+(\d+) KiB/.exec(out)?.[1]);
    return { cpus, memoryMiB: Math.round(kib / 1024) };
  }

  /** Every domain with its UUID: virsh's table has no UUIDs, `--uuid --name` no states, so both are read. */
  async listDomains(): Promise<DomainListing[]> {
    const c = this.protocol;
    if (c) return this.overProtocol(c, ['list', '--all'], libvirtCallTimeoutMs(), () => listDomainsOver(c));
    const out = await this.run(['list', '--all']);
    const uuids = new Map((await this.run(['list', '--all', '--uuid', '--name'])).split('\n')
      .map((l) => /^\s*([0-9a-f-]{36})\s+(\S+)\s*$/i.exec(l)).filter((m) => m !== null).map((m) => [m[2]!, m[1]!.toLowerCase()]));
    return out.split('\n').map((l) => /^\s*(\S+)\s+(\S+)\s+(.+?)\s*$/.exec(l)).filter((m) => m !== null)
      // A domain defined between the two reads has no UUID here yet: it is nobody kumo knows.
      .map((m) => ({ name: m[2]!, uuid: uuids.get(m[2]!) ?? '', state: m[3] as RuntimeState }));
  }

  async domainState(name: string, timeoutMs?: number): Promise<RuntimeState> {
    const c = this.protocol;
    if (c && protocolLooksUp(name)) return this.overProtocol(c, ['domstate', name], timeoutMs ?? libvirtCallTimeoutMs(), () => domainStateOver(c, name));
    const out = await this.maybe(['domstate', name], timeoutMs);
    return out === undefined ? 'missing' : (out.trim() as RuntimeState);
  }

  async dumpXml(name: string, inactive = false): Promise<string | undefined> {
    const c = this.protocol;
    if (c && protocolLooksUp(name)) return this.overProtocol(c, ['dumpxml', name], libvirtCallTimeoutMs(), () => dumpXmlOver(c, name, inactive));
    return this.maybe(['dumpxml', ...(inactive ? ['--inactive'] : []), name]);
  }

  async defineDomain(xml: string): Promise<void> {
    const c = this.protocol;
    if (c) return this.overProtocol(c, ['define'], libvirtCallTimeoutMs(), () => defineOver(c, xml));
    await this.withXmlFile(xml, (file) => this.run(['define', file]));
  }

  async start(name: string): Promise<void> {
    await this.write(['start', name], startOver);
  }

  /** Asks the guest to power off (ACPI); returns at once. */
  async shutdown(name: string): Promise<void> {
    await this.write(['shutdown', name], shutdownOver);
  }

  async reboot(name: string): Promise<void> {
    await this.write(['reboot', name], rebootOver);
  }

  /** Pulls the plug. */
  async destroy(name: string): Promise<void> {
    await this.write(['destroy', name], destroyOver);
  }

  /**
   * A write on one domain (`args`: the virsh command and the domain, last): over the protocol
   * connection where there is one and it finds domains as virsh would, else a virsh process.
   */
  private async write(args: [string, string], over: (c: LibvirtConnection, name: string) => Promise<void>): Promise<void> {
    const c = this.protocol;
    const name = args[1];
    if (c && protocolLooksUp(name)) await this.overProtocol(c, args, libvirtCallTimeoutMs(), () => over(c, name));
    else await this.run(args);
  }

  /**
   * Removes the domain (stopping it first) with its snapshot metadata; absent is fine. Like every
   * call here that takes a domain, `name` is what virsh looks up: an ID, a UUID or a name, in
   * that order. kumo passes its instances' UUIDs.
   */
  async removeDomain(name: string): Promise<void> {
    const c = this.protocol;
    if (c && protocolLooksUp(name)) {
      // Three calls, each bounded and named like the virsh commands they replace.
      const dom = await this.overProtocol(c, ['domstate', name], libvirtCallTimeoutMs(), () => domainToRemove(c, name));
      if (!dom) return;
      await this.overProtocol(c, ['destroy', name], libvirtCallTimeoutMs(), () => stopForRemoval(c, dom));
      await this.overProtocol(c, ['undefine', name], libvirtCallTimeoutMs(), () => undefineForRemoval(c, dom));
      return;
    }
    const state = await this.domainState(name);
    if (state === 'missing') return;
    if (state !== 'shut off') await this.maybe(['destroy', name]);
    await this.maybe(['undefine', '--snapshots-metadata', '--nvram', name]);
  }

  /** Asks libvirt's nwfilter driver one question; throws its refusal where it has none (nic-filter.ts). */
  async askNwFilters(timeoutMs: number): Promise<void> {
    const c = this.protocol;
    if (c) await this.overProtocol(c, ['nwfilter-list'], timeoutMs, () => countNwFilters(c));
    else await this.run(['nwfilter-list'], timeoutMs);
  }

  /** How many snapshots a domain has, asked over the protocol; undefined where only virsh can ask. */
  async snapshotCount(name: string): Promise<number | undefined> {
    const c = this.protocol;
    return c && protocolLooksUp(name) ? this.overProtocol(c, ['snapshot-list', name], libvirtCallTimeoutMs(), () => snapshotCountOver(c, name)) : undefined;
  }

  async vncDisplay(name: string): Promise<string | undefined> {
    const out = await this.maybe(['vncdisplay', name]).catch(() => undefined);
    return out?.trim() || undefined;
  }

  async listNetworks(): Promise<NetworkListing[]> {
    const c = this.protocol;
    if (c) return this.overProtocol(c, ['net-list', '--all'], libvirtCallTimeoutMs(), () => listNetworksOver(c));
    const out = await this.run(['net-list', '--all']);
    return out.split('\n').map((l) => /^\s*(\S+)\s+(active|inactive)\s+(yes|no)\s+(yes|no)/.exec(l))
      .filter((m) => m !== null)
      .map((m) => ({ name: m[1]!, active: m[2] === 'active', autostart: m[3] === 'yes', persistent: m[4] === 'yes' }));
  }

  async networkXml(name: string): Promise<string | undefined> {
    const c = this.protocol;
    if (c) return this.overProtocol(c, ['net-dumpxml', name], libvirtCallTimeoutMs(), () => networkXmlOver(c, name));
    return this.maybe(['net-dumpxml', name]);
  }

  async defineNetwork(xml: string): Promise<void> {
    await this.withXmlFile(xml, (file) => this.run(['net-define', file]));
  }

  async startNetwork(name: string): Promise<void> {
    await this.run(['net-start', name]);
  }

  async autostartNetwork(name: string, on = true): Promise<void> {
    await this.run(['net-autostart', name, ...(on ? [] : ['--disable'])]);
  }

  async removeNetwork(name: string): Promise<void> {
    const nets = await this.listNetworks();
    const net = nets.find((n) => n.name === name);
    if (!net) return;
    if (net.active) await this.run(['net-destroy', name]);
    if (net.persistent) await this.maybe(['net-undefine', name]);
  }

  async dhcpLeases(network: string): Promise<DhcpLease[]> {
    const c = this.protocol;
    if (c) return this.overProtocol(c, ['net-dhcp-leases', network], libvirtCallTimeoutMs(), () => dhcpLeasesOver(c, network));
    const out = await this.maybe(['net-dhcp-leases', network]);
    if (!out) return [];
    // " 2024-01-01 10:00:00   52:54:00:aa:bb:cc   ipv4   192.168.122.10/24   web1   01:52:..."
    return out.split('\n')
      .map((l) => /(\S\S:\S\S:\S\S:\S\S:\S\S:\S\S)\s+ipv4\s+(\d+\.\d+\.\d+\.\d+)\/\d+\s+(\S+)/.exec(l))
      .filter((m) => m !== null)
      .map((m) => ({ mac: m[1]!.toLowerCase(), ipv4: m[2]!, ...(m[3] !== '-' ? { hostname: m[3]! } : {}) }));
  }

  /** Runs a command that reads an XML document from a file: `args` places the file's path. */
  async runWithXml(xml: string, args: (file: string) => string[], timeoutMs?: number, about?: string): Promise<string> {
    return this.withXmlFile(xml, (file) => this.run(args(file), timeoutMs, about));
  }

  private async withXmlFile<T>(xml: string, use: (file: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(join(tmpdir(), 'kumo-xml-'));
    try {
      const file = join(dir, 'object.xml');
      await writeFile(file, xml, { mode: 0o600 });
      return await use(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** "define", "start web1": the verb and the object, not the temporary file of an XML document. */
function describeCall(args: string[]): string {
  return args.slice(0, 2).filter((a, i) => i === 0 || (!a.startsWith('-') && !a.includes('/'))).join(' ');
}

/**
 * What a connection that broke in the middle of a call looks like from virsh: libvirtd died (or
 * was restarted) while kumo waited for its answer.
 */
const CONNECTION_LOST = /End of file while reading data|Cannot recv data|Cannot write data|Connection reset by peer|Broken pipe|client socket is closed/i;

const timedOut = (e: unknown, v: Virsh, call: string, timeoutMs: number): KumoError =>
  new KumoError('TIMEOUT', `${v.describe()} did not finish "${call}" within ${Math.round(timeoutMs / 1000)} s`,
    `libvirtd there is stalled or overloaded: check that it is not stuck (\`virsh -c ${v.uri} list\` should answer at once; a stopped process shows state T in ps) and \`kumo host info\`; `
    + 'KUMO_LIBVIRT_TIMEOUT=SECONDS waits longer for a host that is only slow', { cause: e });

/** Undo that needed this libvirt stays journaled: the first kumo command after it is back retries it. */
function startItFix(v: Virsh): string {
  const host = v.hostName();
  return host && host !== 'local'
    ? `start libvirtd on host "${host}" (\`kumo host list\` shows it down until then), then retry; what kumo could not undo meanwhile is retried then (\`kumo doctor\` lists it)`
    : 'start it: `virtlogd -d && libvirtd -d` (or `systemctl start libvirtd`), or run scripts/up.sh';
}

const notRunning = (e: unknown, v: Virsh): KumoError =>
  new KumoError('LIBVIRT_ERROR', `${v.describe()} does not answer (is libvirtd running?)`, startItFix(v), { cause: e });

const diedDuring = (e: unknown, v: Virsh, call: string, why: string): KumoError =>
  new KumoError('LIBVIRT_ERROR', `${v.describe()} stopped answering during "${call}" (libvirtd died?): ${why}`, startItFix(v), { cause: e });

function libvirtError(e: unknown, v: Virsh, call: string, timeoutMs: number): unknown {
  if (e instanceof KumoError && e.code === 'TIMEOUT') return timedOut(e, v, call, timeoutMs);
  if (!(e instanceof KumoError) || e.code !== 'COMMAND_FAILED') return e;
  if (/failed to connect to the hypervisor|Failed to connect socket|No such file or directory.*sock/i.test(e.message)) return notRunning(e, v);
  const msg = /error: (.+)$/m.exec(e.message.split('\n').filter((l) => l.startsWith('error:')).slice(-1)[0] ?? '')?.[1];
  if (CONNECTION_LOST.test(e.message)) return diedDuring(e, v, call, msg ?? 'the connection closed');
  return new KumoError('LIBVIRT_ERROR', `libvirt refused: ${msg ?? e.message}`, undefined, { cause: e });
}

/** The protocol driver's "does not answer (REASON)" (rpc/errors.ts notAnswering). */
const NOT_ANSWERING = / does not answer \((.*)\)$/;

/**
 * The protocol driver's errors in virsh's words (libvirtError above): a call that ran out of
 * time, a daemon that could not be reached (a stalled one that took the socket but never
 * answered counts as out of time, as with virsh), and one that went away under an open
 * connection. libvirt's own refusals already read "libvirt refused: ...".
 */
function protocolError(e: unknown, v: Virsh, call: string, timeoutMs: number, wasOpen: boolean): unknown {
  if (!(e instanceof KumoError)) return e;
  if (e.code === 'TIMEOUT') return timedOut(e, v, call, timeoutMs);
  const reason = e.code === 'LIBVIRT_ERROR' ? NOT_ANSWERING.exec(e.message)?.[1] : undefined;
  if (reason === undefined) return e;
  if (reason.startsWith('no connection within')) return timedOut(e, v, call, timeoutMs);
  return wasOpen ? diedDuring(e, v, call, reason) : notRunning(e, v);
}
