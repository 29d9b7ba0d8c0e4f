import { Command } from 'commander';
import { z } from 'zod';
import { context } from '../app.js';
import { json } from '../render.js';
import { DatacenterService, type Change } from '../../service/datacenter/engine.js';
import { FirewallService, renderTable } from '../../service/firewall.js';
import { DatacenterSchema, type Datacenter } from '../../model/datacenter.js';
import { invalid } from '../../model/errors.js';

const SIGN: Record<Change['action'], string> = { create: '+', update: '~', start: '>', recreate: '±', delete: '-' };
const line = (c: Change) => `${SIGN[c.action]} ${c.action} ${c.kind} ${c.name}: ${c.why}${c.host ? ` (on ${c.host})` : ''}`;

/** The datacenter file's JSON Schema (for editors and CI), generated from the same zod schema kumo validates with. */
export function datacenterJsonSchema(): unknown {
  return z.toJSONSchema(DatacenterSchema, { io: 'input', unrepresentable: 'any' });
}

export function planCommands(): Command[] {
  const plan = new Command('plan').argument('[file]', 'a datacenter YAML file').description('what apply would change (create / update / delete, per resource)')
    .option('--json', 'machine-readable output').option('--schema', 'print the datacenter file\'s JSON Schema instead')
    .action(async (file: string | undefined, o: { json?: boolean; schema?: boolean }) => {
      if (o.schema) return console.log(json(datacenterJsonSchema()));
      const svc = new DatacenterService(await context());
      const changes = await svc.plan(await svc.load(requireFile(file)));
      if (o.json) return console.log(json(changes));
      console.log(changes.length ? changes.map(line).join('\n') : 'no changes: the datacenter matches the file');
    });
  const apply = new Command('apply').argument('<file>', 'a datacenter YAML file').description('make the datacenter match the file (idempotent)')
    .action(async (file: string) => {
      const svc = new DatacenterService(await context());
      const dc = await svc.load(file);
      const changes = await svc.apply(dc, (c) => console.log(line(c)));
      console.log(changes.length ? `applied ${changes.length} change(s)` : 'no changes: the datacenter matches the file');
      printEntry(dc);
    });
  const destroy = new Command('destroy').argument('<file>', 'a datacenter YAML file').description('remove what applying the file made')
    .action(async (file: string) => {
      const svc = new DatacenterService(await context());
      const done = await svc.destroy(await svc.load(file), (c) => console.log(line(c)));
      console.log(done.length ? `removed ${done.length} resource(s)` : 'nothing of this datacenter exists');
    });
  const firewall = new Command('firewall').description('the access rules a datacenter file derives (nftables on its nodes)');
  firewall.command('show').argument('<file>', 'a datacenter YAML file').description('kumo\'s nftables tables on each node, with packet counters per rule')
    .option('--rules', 'also print the rules as derived from the file').option('--json', 'machine-readable output')
    .action(async (file: string, o: { rules?: boolean; json?: boolean }) => {
      const ctx = await context();
      const dc = await new DatacenterService(ctx).load(file);
      const fw = new FirewallService(ctx);
      const live = await fw.show(dc);
      const edge = fw.deriveEdge(dc);
      if (o.json) return console.log(json({ derived: fw.derive(dc), ...(edge ? { edge } : {}), live }));
      for (const t of live) {
        console.log(`${t.host}: table ${t.family} ${t.name}${t.current ? '' : '  (DIFFERS from the file: kumo apply re-applies it)'}`);
        for (const c of t.counters) console.log(`  ${c.chain.padEnd(8)} ${c.id.padEnd(28)} ${String(c.packets ?? '-').padStart(8)} packets`);
      }
      if (o.rules) for (const h of [...fw.derive(dc), ...(edge ? [edge] : [])]) for (const t of h.tables) console.log(`# ${h.host}\n${renderTable(t)}`);
    });
  return [plan, apply, destroy, firewall];
}

function requireFile(file: string | undefined): string {
  if (!file) throw invalid('kumo plan needs a datacenter file', 'kumo plan examples/course-datacenter.yaml (or --schema)');
  return file;
}

/** Where users reach the website: each load balancer's frontend (from the outside namespace in the lab). */
function printEntry(dc: Datacenter): void {
  for (const [name, l] of Object.entries(dc.loadbalancers)) {
    const outside = dc.lab && Object.entries(dc.lab.nodes).find(([, n]) => n.roles.includes('outside'));
    // Behind an edge router, the outside reaches the site at the edge's public address.
    const fwd = dc.edge?.forwards.find((f) => f.to === name);
    const url = fwd ? `http://${dc.edge!.public_address}:${fwd.port}/` : `http://${l.frontend.address}:${l.frontend.port}/`;
    console.log(`website (${name}): ${url}${outside ? `  — from the outside: ip netns exec ${dc.lab!.name}-${outside[0]} curl ${url}` : ''}`);
  }
}
