import { createHash } from 'node:crypto';
import type { Flavor, Instance, RuntimeState } from '../../model/types.js';
import type { Operation } from '../../service/operations.js';
import { cinderTime, OPENSTACK_PATHS, osTime, osUuid } from './common.js';

/**
 * kumo's instances and flavors as Nova 2.1's bodies: servers keyed by the instance's libvirt
 * UUID, flavors by name, status and the OS-EXT-STS states from libvirt's state and the kumo
 * operation at work on the instance (create, delete, stop, start, reboot).
 */

/** Nova's unversioned link to a resource. */
const bookmark = (base: string, collection: string, id: string) =>
  ({ rel: 'bookmark', href: `${base}${OPENSTACK_PATHS.compute}/${collection}/${encodeURIComponent(id)}` });

/** Nova's links to a resource: self (versioned) and bookmark (unversioned). */
export function novaLinks(base: string, collection: string, id: string) {
  return [{ rel: 'self', href: `${base}${OPENSTACK_PATHS.compute}/v2.1/${collection}/${encodeURIComponent(id)}` }, bookmark(base, collection, id)];
}

/** Nova's power_state numbers. */
const POWER = { nostate: 0, running: 1, paused: 3, shutdown: 4, crashed: 6, suspended: 7 } as const;

interface NovaState {
  status: string;
  vm_state: string;
  power_state: number;
  task_state: string | null;
}

/** libvirt's state as Nova's status, vm_state and power_state. */
const STATES: Record<RuntimeState, Omit<NovaState, 'task_state'>> = {
  'running': { status: 'ACTIVE', vm_state: 'active', power_state: POWER.running },
  'blocked': { status: 'ACTIVE', vm_state: 'active', power_state: POWER.running },
  'idle': { status: 'ACTIVE', vm_state: 'active', power_state: POWER.running },
  'in shutdown': { status: 'ACTIVE', vm_state: 'active', power_state: POWER.running },
  'shut off': { status: 'SHUTOFF', vm_state: 'stopped', power_state: POWER.shutdown },
  'paused': { status: 'PAUSED', vm_state: 'paused', power_state: POWER.paused },
  'pmsuspended': { status: 'SUSPENDED', vm_state: 'suspended', power_state: POWER.suspended },
  'crashed': { status: 'ERROR', vm_state: 'error', power_state: POWER.crashed },
  // The domain is gone behind kumo's back: an error a user resolves by deleting the server.
  'missing': { status: 'ERROR', vm_state: 'error', power_state: POWER.nostate },
  // The host does not answer: Nova's UNKNOWN (its compute service is down).
  'unknown': { status: 'UNKNOWN', vm_state: 'active', power_state: POWER.nostate },
};

/** The task_state (and status, where Nova shows one) of a kumo operation at work on the instance. */
const TASKS: Record<string, { task: string; status?: string }> = {
  'instance.create': { task: 'spawning', status: 'BUILD' },
  'instance.delete': { task: 'deleting' },
  'instance.stop': { task: 'powering-off' },
  'instance.start': { task: 'powering-on' },
  'instance.reboot': { task: 'rebooting', status: 'REBOOT' },
  'instance.reboot-hard': { task: 'rebooting_hard', status: 'HARD_REBOOT' },
  'instance.migrate': { task: 'migrating', status: 'MIGRATING' },
};

/** The operation kinds the compute face starts on an instance, and those it shows as a task. */
export const TASK_KINDS = new Set(Object.keys(TASKS));

export function novaState(state: RuntimeState, task?: string): NovaState {
  const s = STATES[state];
  const t = task !== undefined ? TASKS[task] : undefined;
  if (t?.status === 'BUILD') return { status: 'BUILD', vm_state: 'building', power_state: state === 'running' ? POWER.running : POWER.nostate, task_state: t.task };
  return { ...s, ...(t?.status && s.status !== 'ERROR' ? { status: t.status } : {}), task_state: t?.task ?? (state === 'in shutdown' ? 'powering-off' : null) };
}

/** Nova's hostId: an opaque id of the host per project (sha224 of project and host). */
const hostId = (project: string, host: string) => createHash('sha224').update(`${project}${host}`).digest('hex');

/** What a server body needs besides the instance. */
export interface ServerContext {
  base: string;
  project: string;
  /** The kind of the kumo operation at work on it, if any. */
  task?: string;
  /** An admin sees the host (OS-EXT-SRV-ATTR:*), as Nova's policy has it. */
  admin: boolean;
}

/** A flavor reference as a server shows it (2.1: id and links); an instance of custom sizes has none. */
const flavorRef = (base: string, flavor: string | undefined) =>
  ({ id: flavor ?? '', links: flavor ? [bookmark(base, 'flavors', flavor)] : [] });

/** The fields every server body has, whatever kumo knows of it. */
function serverShell(c: ServerContext, id: string, name: string, created: string, updated: string) {
  return {
    id, name, tenant_id: c.project, user_id: '', links: novaLinks(c.base, 'servers', id),
    created: osTime(created), updated: osTime(updated), hostId: '',
    accessIPv4: '', accessIPv6: '', metadata: {}, config_drive: '', progress: 0, key_name: null,
    'OS-DCF:diskConfig': 'MANUAL', 'OS-EXT-AZ:availability_zone': 'nova',
    'OS-SRV-USG:launched_at': null as string | null, 'OS-SRV-USG:terminated_at': null,
    security_groups: [{ name: 'default' }], 'os-extended-volumes:volumes_attached': [] as { id: string }[],
    addresses: {} as Record<string, unknown[]>,
  };
}

/** An instance as Nova's server (GET /servers/{id}, /servers/detail). */
export function renderServer(c: ServerContext, inst: Instance) {
  const addresses: Record<string, unknown[]> = {};
  for (const n of inst.nics) {
    const list = (addresses[n.network] ??= []);
    if (n.ipv4) list.push({ version: 4, addr: n.ipv4, 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': n.mac });
  }
  const state = novaState(inst.state, c.task);
  return {
    ...serverShell(c, inst.uuid, inst.name, inst.createdAt, inst.observedAt),
    status: state.status, 'OS-EXT-STS:vm_state': state.vm_state, 'OS-EXT-STS:power_state': state.power_state, 'OS-EXT-STS:task_state': state.task_state,
    hostId: hostId(c.project, inst.host),
    image: { id: osUuid('image', inst.image), links: [bookmark(c.base, 'images', osUuid('image', inst.image))] },
    flavor: flavorRef(c.base, inst.flavor),
    addresses,
    // kumo puts root's keys into the seed, not a keypair's name: the name is not recorded.
    'OS-SRV-USG:launched_at': cinderTime(inst.createdAt),
    'os-extended-volumes:volumes_attached': inst.volumes.map((v) => ({ id: osUuid('volume', v.name) })),
    ...(inst.state === 'missing' || inst.state === 'crashed' ? { fault: fault(inst.drift[0] ?? `the guest ${inst.state === 'crashed' ? 'crashed' : 'is gone'}`, inst.observedAt) } : {}),
    ...(c.admin ? { 'OS-EXT-SRV-ATTR:host': inst.host, 'OS-EXT-SRV-ATTR:hypervisor_hostname': inst.host, 'OS-EXT-SRV-ATTR:instance_name': inst.name } : {}),
  };
}

/** A server kumo knows only from its create operation: still building (no record yet), or failed (nothing left). */
export function renderOperationServer(c: ServerContext, op: Operation) {
  const failed = op.state === 'failed';
  return {
    ...serverShell(c, op.id, op.target, op.createdAt, op.updatedAt),
    status: failed ? 'ERROR' : 'BUILD', 'OS-EXT-STS:vm_state': failed ? 'error' : 'building',
    'OS-EXT-STS:power_state': POWER.nostate, 'OS-EXT-STS:task_state': failed ? null : 'scheduling',
    image: '', flavor: flavorRef(c.base, undefined),
    ...(failed ? { fault: fault(op.error ? `${op.error.message}${op.error.fix ? `; ${op.error.fix}` : ''}` : 'the create failed', op.finishedAt ?? op.updatedAt) } : {}),
  };
}

/** Nova's fault: what went wrong with a server in ERROR. */
const fault = (message: string, at: string) => ({ code: 500, message, created: osTime(at) });

/** The short form of a server in GET /servers. */
export const serverSummary = (base: string, id: string, name: string) => ({ id, name, links: novaLinks(base, 'servers', id) });

/** A flavor as Nova 2.1 shows it (its id is kumo's flavor name: a string, as Nova's API has it). */
export function renderFlavor(base: string, f: Flavor, isPublic: boolean) {
  return {
    id: f.name, name: f.name, vcpus: f.vcpus, ram: f.ramMiB, disk: f.diskGiB,
    'OS-FLV-EXT-DATA:ephemeral': 0, 'OS-FLV-DISABLED:disabled': false, swap: '', rxtx_factor: 1.0,
    'os-flavor-access:is_public': isPublic, links: novaLinks(base, 'flavors', f.name),
  };
}
