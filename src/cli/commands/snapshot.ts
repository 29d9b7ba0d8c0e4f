import { Command, Option } from 'commander';
import { named } from '../names.js';
import { actor, context, say } from '../app.js';
import { json, table } from '../render.js';
import { SnapshotService } from '../../service/snapshots.js';
import type { RevertTo } from '../../model/types.js';

const two = (n: number) => String(n).padStart(2, '0');

/** Local time with its UTC offset, as `virsh snapshot-list` prints it: "2021-04-05 14:34:55 +0900". */
export function localTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  const east = -d.getTimezoneOffset();
  const offset = `${east < 0 ? '-' : '+'}${two(Math.floor(Math.abs(east) / 60))}${two(Math.abs(east) % 60)}`;
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${offset}`;
}

export function snapshotCommand(): Command {
  const cmd = new Command('snapshot').description('internal qcow2 snapshots of an instance (disks, and memory while it runs)');

  cmd.command('create').addArgument(named('instance', '<instance>')).argument('[name]', 'snapshot name (default: the creation time in epoch seconds, like virsh snapshot-create)')
    .description('take a snapshot, like virsh snapshot-create / snapshot-create-as --name')
    .action(async (instance: string, name: string | undefined) => {
      const s = await new SnapshotService(await context(), actor()).create(instance, name);
      console.log(`created snapshot ${s.name} of ${instance} (${s.state}, ${s.memory ? 'disks and memory' : 'disks'})`);
    });

  cmd.command('list').addArgument(named('instance', '<instance>')).description('like virsh snapshot-list').option('--json', 'machine-readable output')
    .action(async (instance: string, o: { json?: boolean }) => {
      const list = await new SnapshotService(await context(), actor()).list(instance);
      if (o.json) return console.log(json(list));
      console.log(table(['Name', 'Creation Time', 'State'], list.map((s) => [s.name, localTime(s.creationTime), s.state])));
    });

  cmd.command('revert').addArgument(named('instance', '<instance>')).argument('<name>')
    .description('go back to a snapshot: disks, and memory for one taken while running; the instance ends in the snapshot\'s state')
    .addOption(new Option('--running', 'leave the instance running, whatever the snapshot\'s state').conflicts('paused'))
    .option('--paused', 'leave the instance paused')
    .option('--force', 'revert even where libvirt considers it risky')
    .action(async (instance: string, name: string, o: { running?: boolean; paused?: boolean; force?: boolean }) => {
      const to: RevertTo = o.running ? 'running' : o.paused ? 'paused' : 'snapshot';
      const state = await new SnapshotService(await context(), actor()).revert(instance, name, { to, force: o.force ?? false });
      console.log(`reverted ${instance} to snapshot ${name}: now ${state}`);
      if (state === 'shut off') say(`start it with: kumo instance start ${instance}`);
    });

  cmd.command('delete').addArgument(named('instance', '<instance>')).argument('<name>').description('like virsh snapshot-delete')
    .action(async (instance: string, name: string) => {
      await new SnapshotService(await context(), actor()).delete(instance, name);
      console.log(`deleted snapshot ${name} of ${instance}`);
    });
  return cmd;
}
