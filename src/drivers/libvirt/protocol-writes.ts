import { KumoError } from '../../model/errors.js';
import { lookUp } from './protocol-reads.js';
import { countSnapshots, createDomain, defineXml, destroyDomain, rebootDomain, shutdownDomain, undefineWithFlags } from './rpc/domain-writes.js';
import type { RpcCaller } from './rpc/domains.js';
import { LibvirtRefusal } from './rpc/errors.js';
import { type Domain, UNDEFINE_NVRAM, UNDEFINE_SNAPSHOTS_METADATA, VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID } from './rpc/protocol.js';

/**
 * The domain lifecycle writes create, stop, start and delete make, over the host's protocol
 * connection (rpc/) instead of a virsh process per call: the same calls virsh makes, found the
 * way virsh finds a domain (UUID, else name; an all-digit name stays on virsh), and refused in
 * virsh's words where virsh words the refusal itself. virsh.ts words the rest.
 */

/** virsh's own refusal of a domain it cannot find ("error: failed to get domain 'X'"). */
const noSuchDomain = (name: string): KumoError => new KumoError('LIBVIRT_ERROR', `libvirt refused: failed to get domain '${name}'`);

const refusedWith = (e: unknown, ...codes: number[]): boolean => e instanceof LibvirtRefusal && codes.includes(e.remote.code);

async function found(c: RpcCaller, name: string): Promise<Domain> {
  const dom = await lookUp(c, name);
  if (!dom) throw noSuchDomain(name);
  return dom;
}

export async function defineOver(c: RpcCaller, xml: string): Promise<void> {
  await defineXml(c, xml);
}

/** `virsh start`: a running domain is refused by virsh itself, before libvirt is asked. */
export async function startOver(c: RpcCaller, name: string): Promise<void> {
  const dom = await found(c, name);
  if (dom.id !== -1) throw new KumoError('LIBVIRT_ERROR', 'libvirt refused: Domain is already active');
  await createDomain(c, dom);
}

export async function shutdownOver(c: RpcCaller, name: string): Promise<void> {
  await shutdownDomain(c, await found(c, name));
}

export async function rebootOver(c: RpcCaller, name: string): Promise<void> {
  await rebootDomain(c, await found(c, name));
}

export async function destroyOver(c: RpcCaller, name: string): Promise<void> {
  await destroyDomain(c, await found(c, name));
}

/** The domain to remove, or undefined when there is none (removal of nothing is done). */
export const domainToRemove = (c: RpcCaller, name: string): Promise<Domain | undefined> => lookUp(c, name);

/** Stops a running domain that is being removed; one that stopped or went meanwhile is fine. */
export async function stopForRemoval(c: RpcCaller, dom: Domain): Promise<void> {
  if (dom.id === -1) return;
  await destroyDomain(c, dom).catch((e: unknown) => { if (!refusedWith(e, VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID)) throw e; });
}

/** `virsh undefine --snapshots-metadata --nvram`; a domain gone meanwhile is fine. */
export async function undefineForRemoval(c: RpcCaller, dom: Domain): Promise<void> {
  await undefineWithFlags(c, dom, UNDEFINE_SNAPSHOTS_METADATA | UNDEFINE_NVRAM)
    .catch((e: unknown) => { if (!refusedWith(e, VIR_ERR_NO_DOMAIN)) throw e; });
}

/** How many snapshots the domain has (virsh's "failed to get domain" when there is none). */
export async function snapshotCountOver(c: RpcCaller, name: string): Promise<number> {
  return countSnapshots(c, await found(c, name));
}
