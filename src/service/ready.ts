import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Context } from './context.js';
import { domainOf } from './domains.js';
import { sleep } from '../exec/process.js';
import { waiting, type Waiting } from '../exec/waits.js';
import { pinFilterAddresses } from '../drivers/libvirt/nic-filter.js';
import { agentPing } from '../drivers/libvirt/guest-agent.js';
import { httpGet, sshBanner } from '../drivers/host/http-probe.js';
import { KumoError } from '../model/errors.js';
import { readBootReport, type BootReport } from '../model/guest-console.js';
import { formatReadyCheck, readyCheckOf, type ReadyCheck } from '../model/readiness.js';
import { dhcpServerDown } from './leases.js';
import type { Instance } from '../model/types.js';

export type { ReadyCheck };

/** How long a wait lasts unless told: a cloud image's first boot with cloud-init takes minutes under TCG. */
export const READY_TIMEOUT_MS = 600_000;

export interface ReadyInfo {
  /** The check that passed, as written: http:8080, ssh, cloud-init, agent. */
  check: string;
  /** The guest's first address ('' for an instance without NICs: no lease to wait for). */
  ip: string;
  /** What showed it ready, in words: "answers at http://…", "cloud-init 22.4.2 finished". */
  detail: string;
}

/** What `kumo instance show` and the API say about a guest beyond libvirt's state. */
export interface Readiness {
  check: string;
  status: 'ready' | 'booting' | 'failed' | 'stopped';
  detail: string;
  cloudInit?: { status: 'running' | 'done' | 'failed'; version?: string; errors: string[] };
}

/** What waiting needs of the instance service: its view of the instance, and where its console log is. */
export interface InstanceReader {
  get(name: string): Promise<Instance>;
  consoleLog(name: string): string;
}

export interface WaitOptions {
  timeoutMs: number;
  check: ReadyCheck;
}

/** How an image's instances are known ready (an image in use cannot be deleted; else cloud-init). */
export function imageReadyCheck(ctx: Context, image: string): ReadyCheck {
  const found = ctx.images.get(image);
  return found ? readyCheckOf(found) : { kind: 'cloud-init' };
}

/** One look at a running guest: ready, failed for good, or what it still waits for. */
type Look =
  | { is: 'ready'; ip?: string; detail: string }
  | { is: 'failed'; why: string; fix: string }
  | { is: 'waiting'; ip?: string; for: string };

/**
 * Waits until the guest passes its readiness check (model/readiness.ts) and, when it has NICs,
 * has a DHCP lease. Fails at once on what will not get better: the domain stopped, the kernel
 * panicked, cloud-init finished with errors (when cloud-init is the check); on timeout says what
 * it still waited for and what the guest reported.
 */
export async function waitReady(ctx: Context, instances: InstanceReader, name: string, opts: WaitOptions): Promise<ReadyInfo> {
  // What it waits for is said after 2 s, and again as it changes (exec/waits.ts).
  const said = waiting(`instance "${name}" to be ready (${formatReadyCheck(opts.check)})`, `its console log shows how far the guest has booted: kumo instance console ${name} --log`);
  try {
    return await pollReady(ctx, instances, name, opts, said);
  } finally {
    said.done();
  }
}

async function pollReady(ctx: Context, instances: InstanceReader, name: string, opts: WaitOptions, said: Waiting): Promise<ReadyInfo> {
  const deadline = Date.now() + opts.timeoutMs;
  let pinned = false;
  let last: Look | undefined;
  while (Date.now() < deadline) {
    const inst = await instances.get(name);
    if (inst.state !== 'running') throw new KumoError('COMMAND_FAILED', `instance "${name}" is ${inst.state} while waiting for it to come up`,
      `see its console log: ${instances.consoleLog(name)}`);
    if (!pinned && inst.nics.some((n) => n.ipv4)) {
      // The lease kumo sees becomes the NIC filter's address: libvirt's DHCP snooping can miss
      // the answer on a loaded host, and then drops all of the guest's traffic until it renews.
      const { virsh, id } = domainOf(ctx, name);
      await pinFilterAddresses(virsh, id, new Map(inst.nics.flatMap((n) => (n.ipv4 ? [[n.mac, n.ipv4] as const] : []))));
      pinned = true;
    }
    last = await look(ctx, inst, opts.check, await readConsole(instances.consoleLog(name)), 2_000);
    if (last.is === 'ready') return { check: formatReadyCheck(opts.check), ip: last.ip ?? '', detail: last.detail };
    if (last.is === 'failed') throw new KumoError('GUEST_FAILED', `instance "${name}" ${last.why}`, last.fix);
    said.now(last.for);
    await sleep(1_000);
  }
  throw await timedOut(ctx, instances, name, opts, last);
}

/** The guest's readiness now, for show: one look, probes bounded to a second. */
export async function readinessOf(ctx: Context, inst: Instance, check: ReadyCheck, consoleLog: string): Promise<Readiness> {
  const report = readBootReport(await readConsole(consoleLog));
  const cloudInit = cloudInitOf(report, inst.uuid);
  const base = { check: formatReadyCheck(check), ...(cloudInit ? { cloudInit } : {}) };
  if (inst.state !== 'running') return { ...base, status: 'stopped', detail: `the domain is ${inst.state}` };
  const l = await look(ctx, inst, check, report, 1_000);
  if (l.is === 'ready') return { ...base, status: 'ready', detail: l.detail };
  if (l.is === 'failed') return { ...base, status: 'failed', detail: l.why };
  return { ...base, status: 'booting', detail: `waiting for ${l.for}` };
}

async function look(ctx: Context, inst: Instance, check: ReadyCheck, log: string | BootReport, probeMs: number): Promise<Look> {
  const report = typeof log === 'string' ? readBootReport(log) : log;
  if (report.panic) return { is: 'failed', why: `had a kernel panic: ${report.panic}`, fix: `see its console log (kumo instance console ${inst.name} --log): the image or its kernel command line is broken` };
  const cloudInit = cloudInitOf(report, inst.uuid);
  const ip = inst.nics.find((n) => n.ipv4)?.ipv4;
  const withIp = ip ? { ip } : {};
  const lease = inst.nics.length > 0 && !ip;
  switch (check.kind) {
    case 'cloud-init': {
      if (cloudInit?.status === 'failed') {
        return { is: 'failed', why: `finished cloud-init with errors: ${cloudInit.errors.join('; ')}`,
          fix: `its console log shows the failing module's output (kumo instance console ${inst.name} --log; often a user-data command): fix the user-data, then delete and create the instance again` };
      }
      if (cloudInit?.status !== 'done') return { is: 'waiting', ...withIp, for: !report.booted ? `the kernel of instance "${inst.name}" to start` : `cloud-init to ${cloudInit ? 'finish' : 'start'} on instance "${inst.name}"` };
      if (lease) return { is: 'waiting', for: leaseFor(inst.name) };
      return { is: 'ready', ...withIp, detail: `cloud-init ${cloudInit.version ?? ''} finished`.replace('  ', ' ') };
    }
    case 'agent': {
      const { virsh, id } = domainOf(ctx, inst.name);
      if (!(await agentPing(virsh, id, Math.max(1, Math.round(probeMs / 1000))))) return { is: 'waiting', ...withIp, for: `the QEMU guest agent of instance "${inst.name}" to answer` };
      if (lease) return { is: 'waiting', for: leaseFor(inst.name) };
      return { is: 'ready', ...withIp, detail: 'the QEMU guest agent answers' };
    }
    case 'http': {
      if (!ip) return { is: 'waiting', for: leaseFor(inst.name) };
      const url = `http://${ip}:${check.port}/`;
      if ((await httpFromHost(ctx, inst.host, url, probeMs)) === undefined) return { is: 'waiting', ip, for: `instance "${inst.name}" to answer HTTP on ${ip}:${check.port}` };
      return { is: 'ready', ip, detail: `answers at ${url}` };
    }
    case 'ssh': {
      if (!ip) return { is: 'waiting', for: leaseFor(inst.name) };
      if (!(await sshFromHost(ctx, inst.host, ip, probeMs))) return { is: 'waiting', ip, for: `instance "${inst.name}" to answer SSH on ${ip}:22` };
      return { is: 'ready', ip, detail: `SSH answers on ${ip}:22` };
    }
  }
}

/** The wait for an address, as every wait names it (the CLI's notices, an operation's `waiting`). */
const leaseFor = (name: string) => `a DHCP lease for instance "${name}"`;

/** cloud-init in the current boot: failed when it finished with errors (a failing module, a traceback). */
function cloudInitOf(report: BootReport, instanceId: string): Readiness['cloudInit'] {
  const c = report.cloudInit;
  if (!c) return undefined;
  const errors = report.errors.filter((e) => /^(ERROR|CRITICAL)|fail|traceback/i.test(e));
  // A finish that names another instance is a disk that booted with someone else's seed: not this one's.
  const done = c.stage === 'done' && (c.instanceId === undefined || c.instanceId === instanceId);
  const status = done ? (errors.length ? 'failed' : 'done') : 'running';
  return { status, ...(c.version ? { version: c.version } : {}), errors: report.errors };
}

async function timedOut(ctx: Context, instances: InstanceReader, name: string, opts: WaitOptions, last: Look | undefined): Promise<KumoError> {
  const s = Math.round(opts.timeoutMs / 1000);
  const seeLog = `see its console log: ${instances.consoleLog(name)}`;
  if (!last || last.is !== 'waiting') return new KumoError('TIMEOUT', `instance "${name}" was not ready within ${s} s`, seeLog);
  if (last.for === leaseFor(name)) {
    const noLease = await whyNoLease(ctx, instances, name);
    return new KumoError('TIMEOUT', `instance "${name}" did not get a DHCP lease within ${s} s${noLease ? `: ${noLease.why}` : ''}`, noLease?.fix ?? seeLog);
  }
  const report = readBootReport(await readConsole(instances.consoleLog(name)));
  const guest = report.errors.length ? ` (cloud-init reported: ${report.errors.join('; ')})` : '';
  if (opts.check.kind === 'http' && last.ip) {
    return new KumoError('TIMEOUT', `instance "${name}" did not answer on ${last.ip}:${opts.check.port} within ${s} s${guest}`,
      `${seeLog}; an image whose guests serve nothing there is waited on with --wait-for cloud-init or ssh (or kumo image set IMAGE --ready ...)`);
  }
  if (opts.check.kind === 'cloud-init' && report.booted && !report.cloudInit) {
    return new KumoError('TIMEOUT', `instance "${name}" printed nothing from cloud-init on its console within ${s} s`,
      `an image without cloud-init (or whose console is not on the serial port) is waited on with --wait-for http:PORT or ssh (or kumo image set IMAGE --ready ...); ${seeLog}`);
  }
  return new KumoError('TIMEOUT', `instance "${name}" was not ready (${formatReadyCheck(opts.check)}) within ${s} s: still waiting for ${last.for}${guest}`, seeLog);
}

/** A dead DHCP server on one of the instance's networks, the likeliest reason for no lease. */
async function whyNoLease(ctx: Context, instances: InstanceReader, name: string): Promise<{ why: string; fix: string } | undefined> {
  for (const nic of (await instances.get(name)).nics) {
    const down = await dhcpServerDown(ctx, nic.network);
    if (down) return down;
  }
  return undefined;
}

/** The console log's last 2 MiB (the current boot is at its end; the file grows across boots). */
async function readConsole(file: string): Promise<string> {
  if (!existsSync(file)) return '';
  const f = await open(file, 'r').catch(() => undefined);
  if (!f) return '';
  try {
    const { size } = await f.stat();
    const length = Math.min(size, 2 * 2 ** 20);
    const buf = Buffer.alloc(length);
    await f.read(buf, 0, length, size - length);
    return buf.toString('utf8');
  } finally {
    await f.close();
  }
}

/**
 * One GET from the instance's hypervisor, which reaches its guests' networks (this machine
 * may not: a lab node's namespace, a remote host's bridge).
 */
async function httpFromHost(ctx: Context, host: string, url: string, timeoutMs: number): Promise<string | undefined> {
  const shell = ctx.hosts.get(host)?.shell;
  if (!shell || shell.kind === 'local') return httpGet(url, timeoutMs);
  const seconds = String(Math.max(1, Math.round(timeoutMs / 1000)));
  const r = await ctx.shellOf(host).run('curl', ['-sf', '--max-time', seconds, url], { allowFailure: true, timeoutMs: 20_000 }).catch(() => undefined);
  return r?.code === 0 ? r.stdout : undefined;
}

/** Whether the guest's SSH server sends its banner, asked from its hypervisor like httpFromHost. */
async function sshFromHost(ctx: Context, host: string, ip: string, timeoutMs: number): Promise<boolean> {
  const shell = ctx.hosts.get(host)?.shell;
  if (!shell || shell.kind === 'local') return sshBanner(ip, 22, timeoutMs);
  const seconds = String(Math.max(1, Math.round(timeoutMs / 1000)));
  // bash's /dev/tcp: no extra tool on the hypervisor; the banner's first 4 bytes are "SSH-".
  const r = await ctx.shellOf(host).run('timeout', [seconds, 'bash', '-c', 'exec 3<>"/dev/tcp/$0/22" && head -c 4 <&3', ip],
    { allowFailure: true, timeoutMs: 20_000 }).catch(() => undefined);
  return r?.code === 0 && r.stdout.startsWith('SSH-');
}
