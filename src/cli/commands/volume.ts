import { Command } from 'commander';
import { named } from '../names.js';
import { actor, context, say } from '../app.js';
import { json, table } from '../render.js';
import { DETACH_TIMEOUT_MS, VolumeService, type Volume } from '../../service/volumes.js';
import { parseSeconds, parseWhole } from '../../model/sizes.js';

const service = async () => new VolumeService(await context(), actor());

function show(v: Volume): void {
  const { drift, instance, device, ...rest } = v;
  for (const [k, val] of Object.entries(rest)) console.log(`${k.padEnd(12)} ${String(val)}`);
  console.log(`${'instance'.padEnd(12)} ${instance ?? '(not attached)'}`);
  if (device) console.log(`${'device'.padEnd(12)} ${device}`);
  for (const d of drift) console.log(`${'drift'.padEnd(12)} ${d}`);
}

export function volumeCommand(): Command {
  const cmd = new Command('volume').description('data disks that outlive instances, attached to one at a time');

  cmd.command('create').argument('<name>').description('create an empty qcow2 volume')
    .requiredOption('--size <GiB>', 'size in GiB')
    .action(async (name: string, o: { size: string }) => {
      const v = await (await service()).create(name, parseWhole(o.size));
      console.log(`created volume "${v.name}": ${v.sizeGiB} GiB (${v.file})`);
    });

  cmd.command('list').description('list volumes and where they are attached').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const list = await (await service()).list();
      if (o.json) return console.log(json(list));
      console.log(table(['Name', 'Size', 'Instance', 'Device'], list.map((v) => [v.name, `${v.sizeGiB} GiB`, v.instance, v.device])));
      for (const v of list) for (const d of v.drift) say(`warning: ${v.name}: ${d}`);
    });

  cmd.command('show').addArgument(named('volume', '<name>')).description('size, file, attachment and drift').option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }) => {
      const v = await (await service()).get(name);
      if (o.json) return console.log(json(v));
      show(v);
    });

  cmd.command('attach').addArgument(named('volume', '<name>')).addArgument(named('instance', '<instance>'))
    .description('attach to a running instance (hot-plug) or a stopped one (seen on its next start)')
    .action(async (name: string, instance: string) => {
      const { volume: v, live } = await (await service()).attach(name, instance);
      console.log(`attached volume "${name}" to ${instance} as ${v.device ?? '?'}` +
        (live ? ' (hot-plugged: the guest sees it now)' : ` (the guest sees it when it starts: kumo instance start ${instance})`));
    });

  cmd.command('detach').addArgument(named('volume', '<name>'))
    .description('detach from its instance (unmount it in the guest first); waits until a running guest released it')
    .option('--timeout <seconds>', 'how long to wait for a running guest', String(DETACH_TIMEOUT_MS / 1000))
    .action(async (name: string, o: { timeout: string }) => {
      const seconds = parseSeconds('--timeout', o.timeout);
      const instance = await (await service()).detach(name, seconds * 1000);
      console.log(`detached volume "${name}" from ${instance}`);
    });

  cmd.command('resize').addArgument(named('volume', '<name>')).description('grow a volume, also while attached to a running instance')
    .requiredOption('--size <GiB>', 'new size in GiB (only growing)')
    .action(async (name: string, o: { size: string }) => {
      const r = await (await service()).resize(name, parseWhole(o.size));
      if (r.how === 'unchanged') return console.log(`volume "${name}" is already ${r.volume.sizeGiB} GiB`);
      console.log(`grew volume "${name}" from ${r.fromGiB} to ${r.volume.sizeGiB} GiB` +
        (r.how === 'live' ? ` (the guest of ${r.volume.instance ?? '?'} sees the new size now; grow its filesystem there, e.g. resize2fs)` : ''));
    });

  cmd.command('delete').addArgument(named('volume', '<name>')).description('remove a detached volume and its data')
    .action(async (name: string) => {
      await (await service()).delete(name);
      console.log(`deleted volume "${name}"`);
    });
  return cmd;
}
