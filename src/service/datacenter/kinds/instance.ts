import { parseReadyCheck } from '../../../model/readiness.js';
import { KumoError, invalid } from '../../../model/errors.js';
import { groupMembers, type Datacenter, type InstanceGroup } from '../../../model/datacenter.js';
import { hypervisorsOf, sharedInstanceSegments } from '../../../model/topology.js';
import { cloudConfigText, nfsMountConfig } from '../../../drivers/image/seed.js';
import type { Context } from '../../context.js';
import type { InstanceRecord } from '../../../store/instances.js';
import { chooseHost } from '../../host.js';
import { InstanceService } from '../../instances.js';
import { ShareService } from '../../shares.js';
import type { Change, Kind, PlanRun } from '../kind.js';
import { machineActor } from '../../../model/actor.js';
import { instanceStates, placementHosts } from '../observe.js';

/** Where a group without `hosts` goes on real hosts: the file's hypervisors only (not this machine's `local`). */
const fileHypervisors = (dc: Datacenter) => (dc.hosts ? hypervisorsOf(dc.hosts).map(([x]) => x) : undefined);
/** The networks of a group without `networks` on real hosts: the instance segments every hypervisor links. */
const fileInstanceSegments = (dc: Datacenter) => (dc.hosts ? sharedInstanceSegments(dc.hosts) : undefined);

const groupOf = (dc: Datacenter, member: string): [string, InstanceGroup] =>
  Object.entries(dc.instances).find(([name, g]) => groupMembers(name, g.count).includes(member))!;

interface Size { vcpus: number; ramMiB: number; diskGiB: number }

/** A group's flavor: the file's own, or one kumo has (undefined: neither, refused at the group's key). */
function flavorOf({ ctx, dc, refuse }: PlanRun, group: string, g: InstanceGroup): Size | undefined {
  const own = dc.flavors[g.flavor];
  if (own) return { vcpus: own.vcpus, ramMiB: own.ram_mib, diskGiB: own.disk_gib };
  const have = ctx.flavors.get(g.flavor);
  if (!have) refuse(['instances', group, 'flavor'], new KumoError('NOT_FOUND', `flavor "${g.flavor}" is neither in the file nor known to kumo`, 'declare it under flavors:, or pick one of `kumo flavor list`'));
  return have;
}

/**
 * What else the file and kumo's records show would fail a group's instances half-way through
 * apply: an image neither built by the file nor known to kumo, a disk smaller than the image,
 * a share served to none of the group's networks.
 */
function checkGroup({ ctx, dc, refuse }: PlanRun, group: string, g: InstanceGroup, flavor: Size): void {
  const image = ctx.images.get(g.image);
  if (!image && !dc.images[g.image]) {
    refuse(['instances', group, 'image'], new KumoError('NOT_FOUND', `image "${g.image}" is neither built by the file (images:) nor known to kumo`, 'declare it under images:, or import it first (kumo image import)'));
  } else if (image && flavor.diskGiB * 1024 ** 3 < image.virtualSizeBytes) {
    refuse(['instances', group, 'flavor'], invalid(`the ${flavor.diskGiB} GiB disk of flavor "${g.flavor}" is smaller than image "${g.image}" (${Math.ceil(image.virtualSizeBytes / 1024 ** 3)} GiB)`, 'choose a flavor with a larger disk'));
  }
  const share = g.mount && dc.shares[g.mount.share];
  const networks = g.networks ?? fileInstanceSegments(dc);
  if (g.mount && share && networks && !share.networks.some((n) => networks.includes(n))) {
    refuse(['instances', group, 'mount', 'share'], invalid(`instances of "${group}" are on no network share "${g.mount.share}" is served to (${share.networks.join(', ')})`, 'add one of the share\'s networks to the group'));
  }
}

/** cloud-config for a group: mount its share, then its runcmd, then its user_data. */
async function userData(ctx: Context, dc: Datacenter, g: InstanceGroup, group: string): Promise<string> {
  let mount = {};
  if (g.mount) {
    const share = await new ShareService(ctx, machineActor(dc.project)).get(g.mount.share);
    const networks = g.networks ?? fileInstanceSegments(dc);
    const m = share.mounts.find((x) => !networks || networks.includes(x.network));
    if (!m) throw new KumoError('INVALID_INPUT', `instances of "${group}" are on no network share "${g.mount.share}" is served to`, 'add one of the share\'s networks to the group');
    mount = nfsMountConfig(m.source.split(':')[0]!, m.source, g.mount.path);
  }
  return cloudConfigText(mount, { runcmd: g.runcmd }, g.user_data);
}

/**
 * Placement run dry, instance by instance, on one reading of the hosts (each placed instance
 * counts against its host for the next): an impossible placement is an error before apply
 * makes anything. Undefined when the hosts are not there yet (a lab still to create).
 */
async function dryPlacer(ctx: Context, dc: Datacenter, hostsPending: boolean, records: Records) {
  const hosts = hostsPending ? [] : await placementHosts(ctx);
  const anyHypervisor = hosts.some((h) => h.roles.includes('hypervisor'));
  const fileHosts = fileHypervisors(dc);
  return (name: string, flavor: { vcpus: number; ramMiB: number }, g: InstanceGroup): string | undefined => {
    if (!anyHypervisor) return undefined;
    const old = records.get(name);
    const was = old && hosts.find((h) => h.name === old.host);
    if (was) { was.allocatedMiB -= old.ramMiB; was.instances -= 1; }
    const only = g.hosts ?? fileHosts;
    let host: string;
    try {
      host = chooseHost(hosts, flavor.vcpus, flavor.ramMiB, { pack: g.placement === 'pack', ...(only ? { only } : {}) });
    } catch (e) {
      if (e instanceof KumoError) throw new KumoError(e.code, `cannot place instance ${name} of ${dc.name}: ${e.message}`, e.fix, { cause: e });
      throw e;
    }
    const h = hosts.find((x) => x.name === host)!;
    h.allocatedMiB += flavor.ramMiB;
    h.instances += 1;
    return host;
  };
}

type Placer = Awaited<ReturnType<typeof dryPlacer>>;
/** kumo's instance records by name (every project's: names are unique across them), read once per plan. */
type Records = ReadonlyMap<string, InstanceRecord>;

/** A group's members: created, started, or recreated with another image or size (placed dry where they go). */
function groupChanges(group: string, g: InstanceGroup, flavor: Size, records: Records, states: Map<string, string>, place: Placer): Change[] {
  const out: Change[] = [];
  for (const name of groupMembers(group, g.count)) {
    const record = records.get(name);
    const host = (): { host?: string } => { const h = place(name, flavor, g); return h ? { host: h } : {}; };
    if (!record) { out.push({ action: 'create', kind: 'instance', name, why: `${g.image}, ${g.flavor}`, ...host() }); continue; }
    if (record.image !== g.image || record.vcpus !== flavor.vcpus || record.ramMiB !== flavor.ramMiB) {
      out.push({ action: 'recreate', kind: 'instance', name, why: `is ${record.image}/${record.vcpus} vCPU/${record.ramMiB} MiB, should be ${g.image}/${g.flavor}`, ...host() });
      continue;
    }
    const state = states.get(name);
    // One change per member: a start also sets `ha`, a recreate makes it with it.
    if (state === 'missing') out.push({ action: 'recreate', kind: 'instance', name, why: 'its domain was deleted outside kumo' });
    else if (state === 'shut off' || state === 'crashed') out.push({ action: 'start', kind: 'instance', name, why: `it is ${state}` });
    else if ((record.ha === true) !== (g.ha === true)) {
      out.push({ action: 'update', kind: 'instance', name, why: g.ha ? 'becomes highly available (ha: true)' : 'is no longer highly available' });
    }
  }
  return out;
}

/** The members of the file's instance groups: created, started, or recreated with another image or size. */
export const instanceKind: Kind = {
  kind: 'instance',
  exclusive: true,
  pruned: 'no longer in the file',
  wanted: (dc) => Object.entries(dc.instances).flatMap(([group, g]) => groupMembers(group, g.count)),

  async diff(run) {
    const { ctx, dc, changes } = run;
    const out: Change[] = [];
    // One listing per host for all instances, not a full read of each; the hosts' listings and capacities all at once.
    const records: Records = new Map(ctx.instances.list().map((r) => [r.name, r]));
    const [states, place] = await Promise.all([
      instanceStates(ctx, machineActor(dc.project).project),
      dryPlacer(ctx, dc, changes.some((c) => c.kind === 'lab' || c.kind === 'host'), records),
    ]);
    for (const [group, g] of Object.entries(dc.instances)) {
      const flavor = flavorOf(run, group, g);
      if (!flavor) continue;
      let mine: Change[] | undefined;
      try {
        mine = groupChanges(group, g, flavor, records, states, place);
      } catch (e) {
        // One placement problem per group: the group's key, with the file's line and column.
        if (!(e instanceof KumoError)) throw e;
        run.refuse(['instances', group], e);
      }
      if (!mine || mine.some((c) => c.action === 'create' || c.action === 'recreate')) checkGroup(run, group, g, flavor);
      out.push(...(mine ?? []));
    }
    return out;
  },

  async apply(c, { ctx, dc, started }) {
    const svc = new InstanceService(ctx, machineActor(dc.project));
    const [group, g] = groupOf(dc, c.name);
    if (c.action === 'update' || c.action === 'start') ctx.instances.setHa(c.name, g.ha === true); // the HA watcher reads it at its next beat
    if (c.action === 'update') return { group, image: g.image, flavor: g.flavor };
    if (c.action === 'start') {
      await svc.start(c.name);
    } else {
      if (c.action === 'recreate') await svc.delete(c.name);
      const networks = g.networks ?? fileInstanceSegments(dc);
      const only = g.hosts ?? fileHypervisors(dc);
      await svc.create({
        name: c.name, image: g.image, flavor: g.flavor, sshKeys: g.ssh_keys,
        ...(networks ? { networks } : {}), ...(g.root_password_hash ? { passwordHash: g.root_password_hash } : {}),
        userData: await userData(ctx, dc, g, group), ...(g.ha ? { ha: true } : {}),
        ...(c.host ? { host: c.host } : { placement: { pack: g.placement === 'pack', ...(only ? { only } : {}) } }),
      });
    }
    started.push(c.name);
    return { group, image: g.image, flavor: g.flavor };
  },

  // Load balancers need their instances' addresses: wait for every new or restarted one.
  // A real image under TCG takes minutes to boot and run cloud-init.
  async settle({ ctx, dc, started }) {
    const svc = new InstanceService(ctx, machineActor(dc.project));
    for (const name of started) {
      const waitFor = groupOf(dc, name)[1].wait_for;
      await svc.waitReady(name, 900_000, waitFor !== undefined ? { check: parseReadyCheck(waitFor, 'wait_for') } : {});
    }
  },

  async remove(name, _applied, { ctx }) {
    // In the project it was made in (the file's project may have changed since).
    const r = ctx.instances.get(name);
    if (r) await new InstanceService(ctx, machineActor(r.project)).delete(name);
  },
};
