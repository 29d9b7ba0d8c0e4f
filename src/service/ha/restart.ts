import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from '../context.js';
import { chooseHost, HostService, type HostView } from '../host.js';
import { KumoError } from '../../model/errors.js';
import type { InstanceRecord } from '../../store/instances.js';

/** How old the copy of an HA instance's domain may get before the watcher takes it again. */
export const COPY_FRESH_MS = 30_000;

/** Where the copy of an HA instance's domain is kept: its folder, on the storage every hypervisor shares. */
export const domainCopyPath = (ctx: Context, name: string): string => join(ctx.paths.instances, name, 'ha-domain.xml');

/**
 * Keeps a copy of an HA instance's persistent domain XML while its host answers: when the host
 * dies its libvirt (and the definition in it) is out of reach, and the copy is what the domain is
 * defined from elsewhere, with its UUID, MACs and disk paths. Taken again when older than COPY_FRESH_MS.
 */
export async function keepDomainCopy(ctx: Context, host: string, r: InstanceRecord, now = Date.now()): Promise<void> {
  const file = domainCopyPath(ctx, r.name);
  const age = await stat(file).then((s) => now - s.mtimeMs, () => Infinity);
  if (age < COPY_FRESH_MS) return;
  const xml = await ctx.virshFor(host).dumpXml(r.uuid, true);
  if (!xml) return; // no such domain there (yet, or any more): nothing to copy
  await writeFile(`${file}.new`, xml, { mode: 0o600 });
  await rename(`${file}.new`, file);
}

/**
 * Where an HA instance of a dead host goes: the placement of create (most memory left that
 * fits), over the hypervisors that answer, never the dead one nor another host HA holds down.
 * Only the candidates are asked: a dead host's libvirt would make every beat wait its timeout.
 */
export async function placeElsewhere(ctx: Context, r: InstanceRecord, exclude: string[],
  view: (host: string) => Promise<HostView> = (host) => new HostService(ctx).get(host)): Promise<string> {
  const names = ctx.hosts.list().filter((h) => h.uri && h.roles.includes('hypervisor') && !exclude.includes(h.name)
    && (ctx.hostHa.get(h.name)?.state ?? 'up') === 'up').map((h) => h.name);
  if (!names.length) throw new KumoError('NOT_FOUND', `no other hypervisor answers to take ${r.name}`, 'add a hypervisor, or bring one back');
  return chooseHost(await Promise.all(names.map(view)), r.vcpus, r.ramMiB);
}

/**
 * Starts an HA instance on `to` from the same disk files, with the same domain: the copy kept
 * while its host answered is defined there (same UUID and MACs, so the same addresses), then
 * started. A define that works but a start that fails leaves no domain behind on `to`.
 */
export async function startOn(ctx: Context, r: InstanceRecord, to: string): Promise<void> {
  const xml = await readFile(domainCopyPath(ctx, r.name), 'utf8').catch(() => undefined);
  if (!xml) {
    throw new KumoError('NOT_FOUND', `there is no copy of ${r.name}'s domain to start it from (the watcher takes one while its host answers)`,
      `bring its host back, or recreate the instance; run \`kumo ha run\` (or kumo serve) before a host fails`);
  }
  const v = ctx.virshFor(to);
  await v.defineDomain(xml);
  try {
    await v.start(r.uuid);
  } catch (e) {
    await v.removeDomain(r.uuid).catch(() => undefined);
    throw e;
  }
}

/**
 * On a host that came back: the domain of an instance that moved away is removed there and never
 * started (the instance runs elsewhere from the same disk). One found running means the fence did
 * not stop it: it is ended too (the store names the other copy), and the answer says so.
 */
export async function undefineMoved(ctx: Context, host: string, r: InstanceRecord): Promise<'none' | 'undefined' | 'was running'> {
  const v = ctx.virshFor(host);
  const state = await v.domainState(r.uuid);
  if (state === 'missing') return 'none';
  await v.removeDomain(r.uuid);
  return state === 'running' || state === 'paused' ? 'was running' : 'undefined';
}
