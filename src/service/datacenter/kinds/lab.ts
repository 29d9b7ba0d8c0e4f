import { KumoError } from '../../../model/errors.js';
import { ROOT_ONLY } from '../../../model/reach.js';
import { LabService } from '../../lab.js';
import type { Change, Kind } from '../kind.js';

/** The file's lab: the course's datacenter on this machine (kumo lab up), repaired when a part died. */
export const labKind: Kind = {
  kind: 'lab',
  exclusive: false,
  wanted: (dc) => (dc.lab ? [dc.lab.name] : []),

  async diff({ ctx, dc, refuse }) {
    if (!dc.lab) return [];
    if (dc.lab.migration_tls) {
      // A datacenter file is the cloud's (model/reach.ts): a server folder of keys is root's.
      refuse(['lab', 'migration_tls'], new KumoError('INVALID_INPUT', `a datacenter file's lab may not name a server folder (migration_tls): ${ROOT_ONLY}`,
        'leave migration_tls out of the file; root gives the lab certificates with `kumo lab up FILE`'));
      return [];
    }
    const lab = new LabService(ctx);
    const state = lab.state();
    if (!state) return [{ action: 'create', kind: 'lab', name: dc.lab.name, why: 'no lab is up' }];
    if (state.bare) {
      refuse(['lab'], new KumoError('IN_USE', `lab "${state.spec.name}" is up bare (machines and cables only)`,
        'describe its nodes under hosts: instead of lab: (kumo lab status shows their netns and URIs), or take it down first (kumo lab down)'));
      return [];
    }
    if (JSON.stringify(state.spec) !== JSON.stringify(dc.lab)) {
      refuse(['lab'], new KumoError('IN_USE', `lab "${state.spec.name}" is up with another topology than the file's`, 'take it down first (kumo lab down), or make the file\'s lab the same'));
      return [];
    }
    const s = await lab.status();
    const problems = [
      ...s.nodes.filter((n) => !n.namespace).map((n) => `node ${n.name}'s namespace is gone`),
      ...s.nodes.filter((n) => n.libvirtd && !n.libvirtd.pid).map((n) => `${n.name}'s libvirtd is down`),
      ...s.segments.filter((g) => g.dhcp && !g.dhcp.running).map((g) => `DHCP on ${g.name} is down`),
    ];
    return problems.length ? [{ action: 'update', kind: 'lab', name: dc.lab.name, why: problems.join('; ') } satisfies Change] : [];
  },

  async apply(_c, { ctx, dc }) {
    await new LabService(ctx).up(dc.lab!);
    return dc.lab;
  },

  async remove(_name, _applied, { ctx }) {
    await new LabService(ctx).down();
  },
};
