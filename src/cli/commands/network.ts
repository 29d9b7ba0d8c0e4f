import { Command, Option } from 'commander';
import { named } from '../names.js';
import { actor, context } from '../app.js';
import { json, table } from '../render.js';
import { readFileArg } from './instance.js';
import { NETWORK_MODES, NetworkService, type CreateNetworkRequest } from '../../service/networks.js';
import type { NetworkMode } from '../../model/types.js';

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

/** This machine's networks, as root in the --project picked. */
const networks = async () => {
  const ctx = await context();
  return new NetworkService(ctx, ctx.virsh, actor());
};

export function networkCommand(): Command {
  const cmd = new Command('network').description('virtual networks: nat, isolated, host bridge, Open vSwitch');

  cmd.command('create').argument('<name>')
    .description('define and start a network (e.g. the course\'s nat1: --mode nat --cidr 192.168.222.0/24 --bridge virbr10)')
    .addOption(new Option('--mode <mode>', 'how guests reach the world').choices(NETWORK_MODES).makeOptionMandatory())
    .option('--cidr <cidr>', 'nat/isolated: the subnet, e.g. 192.168.222.0/24')
    .option('--gateway <ip>', 'the host\'s address on it, full or as a suffix like .1 (default: the first address)')
    .option('--dhcp <range>', 'DHCP range START-END, e.g. .2-.254 (default: the rest of the subnet)')
    .option('--no-dhcp', 'no DHCP server on this network')
    .option('--bridge <name>', 'nat/isolated: name of the bridge to make (default: next free virbrN); bridge/ovs: the host bridge')
    .option('--create-bridge', 'bridge/ovs: create the host bridge too (and remove it with the network)')
    .option('--autostart', 'start the network when libvirtd starts')
    .action(async (name: string, o: { mode: NetworkMode; cidr?: string; gateway?: string; dhcp?: string | false; bridge?: string; createBridge?: boolean; autostart?: boolean }) => {
      const req: CreateNetworkRequest = {
        name, mode: o.mode,
        ...(o.cidr !== undefined ? { cidr: o.cidr } : {}),
        ...(o.gateway !== undefined ? { gateway: o.gateway } : {}),
        ...(typeof o.dhcp === 'string' ? { dhcp: o.dhcp } : {}),
        ...(o.dhcp === false ? { noDhcp: true } : {}),
        ...(o.bridge !== undefined ? { bridge: o.bridge } : {}),
        ...(o.createBridge ? { createBridge: true } : {}),
        ...(o.autostart ? { autostart: true } : {}),
      };
      const n = await (await networks()).create(req);
      console.log(`network ${n.name} created and started (${n.mode}${n.cidr ? ` ${n.cidr}` : ''}, bridge ${n.bridge ?? '-'}${n.autostart ? ', autostart' : ''})`);
    });

  cmd.command('define').argument('<file>', 'a libvirt network XML file, like the course\'s testnat.xml')
    .description('define a network from libvirt XML (checked against libvirt\'s schema first); start it with network start')
    .action(async (file: string) => {
      const n = await (await networks()).define(readFileArg('define', file), 'machine'); // root on the machine, as virsh net-define
      console.log(`Network ${n.name} defined from ${file}`);
    });

  cmd.command('list').description('like virsh net-list --all, plus mode, subnet and bridge').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const nets = await (await networks()).list();
      if (o.json) return console.log(json(nets));
      console.log(table(['Name', 'Mode', 'CIDR', 'Bridge', 'Active', 'Autostart', 'Persistent', 'Instances'],
        nets.map((n) => [n.name, n.mode, n.cidr, n.bridge, n.builtinPending ? 'made on first use' : n.active ? 'active' : 'inactive',
          yesNo(n.autostart), yesNo(n.persistent), n.instances.length || ''])));
    });

  cmd.command('show').addArgument(named('network', '<name>')).option('--json', 'machine-readable output').option('--xml', 'the libvirt XML')
    .action(async (name: string, o: { json?: boolean; xml?: boolean }) => {
      const svc = await networks();
      if (o.xml) {
        process.stdout.write(await svc.xml(name));
        return;
      }
      const n = await svc.get(name);
      if (o.json) return console.log(json(n));
      const row = (k: string, v: unknown) => console.log(`${k.padEnd(11)} ${v === undefined || v === '' ? '-' : String(v)}`);
      row('name', n.name);
      row('mode', n.mode);
      row('cidr', n.cidr);
      row('gateway', n.gateway);
      row('dhcp', n.dhcp ? `${n.dhcp.start} - ${n.dhcp.end}` : undefined);
      row('bridge', n.bridge);
      row('state', n.builtinPending ? 'built in, made on first use' : n.active ? 'active' : 'inactive');
      row('autostart', yesNo(n.autostart));
      row('persistent', yesNo(n.persistent));
      row('instances', n.instances.join(', '));
    });

  addStateCommands(cmd);
  return cmd;
}

/** start, stop, autostart, delete: like virsh net-start, net-destroy, net-autostart, net-undefine. */
function addStateCommands(cmd: Command): void {
  cmd.command('start').addArgument(named('network', '<name>')).action(async (name: string) => {
    await (await networks()).start(name);
    console.log(`Network ${name} started`);
  });
  cmd.command('stop').addArgument(named('network', '<name>')).description('like virsh net-destroy: stops it, keeps the definition').action(async (name: string) => {
    await (await networks()).stop(name);
    console.log(`Network ${name} stopped`);
  });
  cmd.command('autostart').addArgument(named('network', '<name>')).option('--disable', 'do not start it with libvirtd')
    .action(async (name: string, o: { disable?: boolean }) => {
      await (await networks()).autostart(name, !o.disable);
      console.log(`Network ${name} ${o.disable ? 'unmarked as autostarted' : 'marked as autostarted'}`);
    });
  cmd.command('delete').addArgument(named('network', '<name>')).description('stop and undefine a network no instance uses').action(async (name: string) => {
    await (await networks()).delete(name);
    console.log(`Network ${name} deleted`);
  });
}
