import type { Context } from './context.js';
import type { Virsh } from '../drivers/libvirt/virsh.js';
import { notFound } from '../model/errors.js';

/**
 * A kumo instance's libvirt domain: the libvirt that runs it and the key virsh finds it by.
 * The key is the UUID kumo chose at create (it stays the same across live migrations), never
 * the name: virsh tries a name as an ID and as a UUID first, and a domain kumo did not make may
 * carry the name of one it did. A domain by that name with another UUID is not kumo's.
 */
export interface InstanceDomain {
  virsh: Virsh;
  /** The domain's UUID, as kumo recorded it. */
  id: string;
}

export function domainOf(ctx: Context, instance: string): InstanceDomain {
  const r = ctx.instances.get(instance);
  if (!r) throw notFound(`instance "${instance}" does not exist`, 'see `kumo instance list`');
  return { virsh: ctx.virshFor(r.host), id: r.uuid };
}
