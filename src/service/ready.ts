import type { Context } from './context.js';
import { domainOf } from './domains.js';
import { sleep } from '../exec/process.js';
import { waiting, type Waiting } from '../exec/waits.js';
import { pinFilterAddresses } from '../drivers/libvirt/nic-filter.js';
import { httpGet } from '../drivers/host/http-probe.js';
import { KumoError } from '../model/errors.js';
import { dhcpServerDown } from './leases.js';
import type { Instance } from '../model/types.js';

export interface ReadyInfo {
  ip: string;
  /** Whether the guest answered HTTP on 8080 (false when only a DHCP lease was seen). */
  http: boolean;
}

export const HTTP_PORT = 8080;

/** What waiting needs of the instance service: its view of the instance, and where its console log is. */
export interface InstanceReader {
  get(name: string): Promise<Instance>;
  consoleLog(name: string): string;
}

/**
 * Waits until the guest has a DHCP lease and, unless it never does, answers HTTP on 8080; what it
 * waits for (the lease, then HTTP) is said after 2 s (exec/waits.ts).
 */
export async function waitReady(ctx: Context, instances: InstanceReader, name: string, timeoutMs: number, needHttp: boolean): Promise<ReadyInfo> {
  const said = waiting(`a DHCP lease for instance "${name}"`, 'its console log shows how far the guest has booted: kumo instance console');
  try {
    return await pollReady(ctx, instances, name, timeoutMs, needHttp, said);
  } finally {
    said.done();
  }
}

async function pollReady(ctx: Context, instances: InstanceReader, name: string, timeoutMs: number, needHttp: boolean, said: Waiting): Promise<ReadyInfo> {
  const deadline = Date.now() + timeoutMs;
  let ip: string | undefined;
  let pinned = false;
  while (Date.now() < deadline) {
    const inst = await instances.get(name);
    if (inst.state !== 'running') throw new KumoError('COMMAND_FAILED', `instance "${name}" is ${inst.state} while waiting for it to come up`,
      `see its console log: ${instances.consoleLog(name)}`);
    ip = inst.nics.find((n) => n.ipv4)?.ipv4;
    if (ip && !pinned) {
      // The lease kumo sees becomes the NIC filter's address: libvirt's DHCP snooping can miss
      // the answer on a loaded host, and then drops all of the guest's traffic until it renews.
      const { virsh, id } = domainOf(ctx, name);
      await pinFilterAddresses(virsh, id, new Map(inst.nics.flatMap((n) => (n.ipv4 ? [[n.mac, n.ipv4] as const] : []))));
      pinned = true;
    }
    if (ip && !needHttp) return { ip, http: false };
    if (ip) said.now(`instance "${name}" to answer HTTP on ${ip}:${HTTP_PORT}`);
    if (ip && (await httpFromHost(ctx, inst.host, `http://${ip}:${HTTP_PORT}/`)) !== undefined) return { ip, http: true };
    await sleep(1_000);
  }
  const noLease = ip ? undefined : await whyNoLease(ctx, instances, name);
  throw new KumoError('TIMEOUT', `instance "${name}" did not ${ip ? `answer on ${ip}:${HTTP_PORT}` : 'get a DHCP lease'} within ${Math.round(timeoutMs / 1000)} s${noLease ? `: ${noLease.why}` : ''}`,
    noLease?.fix ?? `see its console log: ${instances.consoleLog(name)}`);
}

/** A dead DHCP server on one of the instance's networks, the likeliest reason for no lease. */
async function whyNoLease(ctx: Context, instances: InstanceReader, name: string): Promise<{ why: string; fix: string } | undefined> {
  for (const nic of (await instances.get(name)).nics) {
    const down = await dhcpServerDown(ctx, nic.network);
    if (down) return down;
  }
  return undefined;
}

/**
 * One GET from the instance's hypervisor, which reaches its guests' networks (this machine
 * may not: a lab node's namespace, a remote host's bridge).
 */
async function httpFromHost(ctx: Context, host: string, url: string): Promise<string | undefined> {
  const shell = ctx.hosts.get(host)?.shell;
  if (!shell || shell.kind === 'local') return httpGet(url, 2_000);
  const r = await ctx.shellOf(host).run('curl', ['-sf', '--max-time', '2', url], { allowFailure: true, timeoutMs: 20_000 }).catch(() => undefined);
  return r?.code === 0 ? r.stdout : undefined;
}
