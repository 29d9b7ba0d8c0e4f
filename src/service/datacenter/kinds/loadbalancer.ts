import { groupMembers, type Datacenter } from '../../../model/datacenter.js';
import { LoadBalancerService } from '../../loadbalancers.js';
import type { Change, Kind } from '../kind.js';
import { machineActor } from '../../../model/actor.js';

type LoadBalancerSpec = Datacenter['loadbalancers'][string];
type Waf = { enabled: boolean; paranoia: number } | null;

const wafOf = (l: LoadBalancerSpec): Waf => (l.waf ? { enabled: l.waf.enabled, paranoia: l.waf.paranoia } : null);
const wafWords = (w: Waf) => (!w ? 'none' : `${w.enabled ? 'on' : 'detection only'} (paranoia ${w.paranoia})`);
const membersOf = (dc: Datacenter, l: LoadBalancerSpec) => groupMembers(l.instances, dc.instances[l.instances]!.count);

/**
 * A load balancer (HAProxy, with the WAF in front) before an instance group. The WAF and the
 * backends change in place (reloads), without taking the website down; another host,
 * frontend, network or backend port makes it anew.
 */
export const loadBalancerKind: Kind = {
  kind: 'loadbalancer',
  exclusive: true,
  pruned: 'no longer in the file',
  wanted: (dc) => Object.keys(dc.loadbalancers),

  async diff({ ctx, dc }) {
    const lbs = new LoadBalancerService(ctx, machineActor(dc.project));
    const out: Change[] = [];
    const add = (action: Change['action'], name: string, why: string) => out.push({ action, kind: 'loadbalancer', name, why });
    for (const [name, l] of Object.entries(dc.loadbalancers)) {
      const have = ctx.loadBalancers.get(name);
      const members = membersOf(dc, l);
      if (!have) { add('create', name, `${l.frontend.address}:${l.frontend.port} -> ${l.instances} (${members.length})`); continue; }
      const same = have.host === l.host && have.frontend.address === l.frontend.address && have.frontend.port === l.frontend.port
        && have.network === l.network && have.backendPort === l.backend_port;
      if (!same) { add('recreate', name, 'its host, frontend, network or port changed'); continue; }
      const changed = [
        ...(JSON.stringify(have.waf) !== JSON.stringify(wafOf(l)) ? [`WAF ${wafWords(have.waf)} -> ${wafWords(wafOf(l))}`] : []),
        ...(have.instances.join() !== members.join() ? [`backends ${have.instances.join(', ')} -> ${members.join(', ')}`] : []),
      ];
      if (changed.length) { add('update', name, changed.join('; ')); continue; }
      const drift = await lbs.drift(name);
      if (drift.length) add('update', name, drift.join('; '));
    }
    return out;
  },

  async apply(c, { ctx, dc }) {
    const l = dc.loadbalancers[c.name]!;
    const lbs = new LoadBalancerService(ctx, machineActor(dc.project));
    const members = membersOf(dc, l);
    if (c.action === 'recreate') await lbs.delete(c.name);
    if (!ctx.loadBalancers.get(c.name)) {
      const waf = wafOf(l);
      await lbs.create({
        name: c.name, host: l.host, frontend: `${l.frontend.address}:${l.frontend.port}`, network: l.network, instances: members,
        backendPort: l.backend_port, ...(waf ? { waf } : {}),
      });
    } else {
      await lbs.update(c.name, { instances: members, waf: wafOf(l) });
    }
    return l;
  },

  async remove(name, _applied, { ctx }) {
    const l = ctx.loadBalancers.get(name);
    if (l) await new LoadBalancerService(ctx, machineActor(l.project)).delete(name);
  },
};
