import { Command } from 'commander';
import { context } from '../app.js';
import { json, table } from '../render.js';
import { LabService } from '../../service/lab.js';

export function labCommand(): Command {
  const cmd = new Command('lab').description('the course\'s datacenter on this one machine: nodes in network namespaces, a libvirtd per hypervisor');
  cmd.command('up').argument('[file]', 'a YAML lab file (default: the course topology: internet, lb, kvm1, kvm2, stg)')
    .description('build the lab, or complete it (running it again is harmless)')
    .option('--bare', 'only the machines and cables (namespaces, links, addresses, libvirtds): a datacenter file with `hosts:` takes over from there')
    .action(async (file: string | undefined, o: { bare?: boolean }) => {
      const svc = new LabService(await context());
      const spec = await svc.load(file);
      const status = await svc.up(spec, (step) => process.stderr.write(`lab ${spec.name}: ${step}\n`), { bare: o.bare ?? false, reach: 'machine' });
      printStatus(status);
    });
  cmd.command('status').description('nodes, segments, daemons and instances of the lab').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const status = await new LabService(await context()).status();
      if (o.json) return console.log(json(status));
      printStatus(status);
    });
  cmd.command('down').description('remove the lab and everything in it: instances, shares, daemons, namespaces, files')
    .action(async () => {
      const r = await new LabService(await context()).down((step) => process.stderr.write(`lab down: ${step}\n`));
      console.log(r.removed ? `lab removed${r.instances.length ? ` (with instances ${r.instances.join(', ')})` : ''}` : 'no lab is up');
    });
  return cmd;
}

function printStatus(s: Awaited<ReturnType<LabService['status']>>): void {
  if (!s.up) return console.log('no lab is up (kumo lab up)');
  console.log(`lab ${s.name}${s.bare ? ' (bare: no hosts registered, no DHCP; describe it under hosts: in a datacenter file)' : ''}`);
  console.log(table(['Node', 'Roles', 'Addresses', 'Namespace', 'libvirtd'],
    s.nodes.map((n) => [n.name, n.roles.join(','), Object.entries(n.links).map(([seg, ip]) => `${seg} ${ip}`).join(', '),
      n.namespace ? n.netns : `${n.netns} (MISSING)`, n.libvirtd ? (n.libvirtd.pid ? `pid ${n.libvirtd.pid}` : 'DOWN') : undefined])));
  console.log(table(['Segment', 'CIDR', 'Instances', 'DHCP'],
    s.segments.map((g) => [g.name, g.cidr, g.instances ? 'yes' : 'no',
      g.dhcp ? `${g.dhcp.running ? 'running' : 'STOPPED'} on ${g.dhcp.server}, pool ${g.dhcp.range}, ${g.dhcp.leases} leases` : undefined])));
  if (s.instances.length) console.log(`instances: ${s.instances.map((i) => `${i.name}@${i.host}`).join(', ')}`);
  if (s.bare) {
    // What a datacenter file's `hosts:` needs for each node (examples/course-datacenter-hosts.yaml).
    console.log(table(['Node', 'hosts: netns', 'hosts: uri'],
      s.nodes.filter((n) => !n.roles.includes('outside')).map((n) => [n.name, n.netns, n.libvirtd?.uri])));
  }
  const outside = s.nodes.find((n) => n.roles.includes('outside'));
  if (outside) console.log(`a shell "outside": ip netns exec ${outside.netns} bash`);
}
