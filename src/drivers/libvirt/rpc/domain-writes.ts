import type { RpcCaller } from './domains.js';
import { decodeDomain, type Domain, encodeDomain, Proc } from './protocol.js';

/**
 * The domain lifecycle writes, one typed call each (layouts from libvirt's remote_protocol.x:
 * remote_domain_*_args / _ret). Flags are libvirt's; 0 is what virsh passes without options.
 * Kept apart from the reads (domains.ts) so the two grow without touching each other; with them,
 * the few questions a create or delete asks on the way (host facts, filters, snapshot count).
 */

/** remote_domain_define_xml_flags_args { xml, flags } → { dom }: what `virsh define FILE` calls. */
export async function defineXml(c: RpcCaller, xml: string, flags = 0): Promise<Domain> {
  return decodeDomain(await c.call(Proc.DOMAIN_DEFINE_XML_FLAGS, (w) => w.string(xml).uint(flags)));
}

/** remote_domain_create_with_flags_args { dom, flags } → { dom }: the started domain, with its id. */
export async function createDomain(c: RpcCaller, dom: Domain, flags = 0): Promise<Domain> {
  return decodeDomain(await c.call(Proc.DOMAIN_CREATE_WITH_FLAGS, (w) => { encodeDomain(w, dom); w.uint(flags); }));
}

/** remote_domain_destroy_flags_args { dom, flags }: pulls the plug (`virsh destroy`). */
export async function destroyDomain(c: RpcCaller, dom: Domain, flags = 0): Promise<void> {
  await c.call(Proc.DOMAIN_DESTROY_FLAGS, (w) => { encodeDomain(w, dom); w.uint(flags); });
}

/** remote_domain_shutdown_args { dom }: asks the guest to power off and returns at once. */
export async function shutdownDomain(c: RpcCaller, dom: Domain): Promise<void> {
  await c.call(Proc.DOMAIN_SHUTDOWN, (w) => encodeDomain(w, dom));
}

/** remote_domain_reboot_args { dom, flags }. */
export async function rebootDomain(c: RpcCaller, dom: Domain, flags = 0): Promise<void> {
  await c.call(Proc.DOMAIN_REBOOT, (w) => { encodeDomain(w, dom); w.uint(flags); });
}

/** remote_domain_undefine_flags_args { dom, flags } (UNDEFINE_* in protocol.ts). */
export async function undefineWithFlags(c: RpcCaller, dom: Domain, flags: number): Promise<void> {
  await c.call(Proc.DOMAIN_UNDEFINE_FLAGS, (w) => { encodeDomain(w, dom); w.uint(flags); });
}

/** remote_connect_num_of_nwfilters_ret { num }: refused where libvirt has no nwfilter driver. */
export async function countNwFilters(c: RpcCaller): Promise<number> {
  return (await c.call(Proc.CONNECT_NUM_OF_NWFILTERS)).int();
}

/** remote_domain_snapshot_num_args { dom, flags } → { num }. */
export async function countSnapshots(c: RpcCaller, dom: Domain): Promise<number> {
  return (await c.call(Proc.DOMAIN_SNAPSHOT_NUM, (w) => { encodeDomain(w, dom); w.int(0); })).int();
}

