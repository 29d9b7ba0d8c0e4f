import { Command } from 'commander';
import { named } from '../names.js';
import { actor, context } from '../app.js';
import { json, ramText, table } from '../render.js';
import { FlavorService } from '../../service/flavors.js';
import { parseWhole } from '../../model/sizes.js';

export function flavorCommand(): Command {
  const cmd = new Command('flavor').description('instance sizes (vCPUs, RAM, disk)');
  cmd.command('list').option('--json', 'machine-readable output').action(async (o: { json?: boolean }) => {
    const flavors = new FlavorService(await context(), actor()).list();
    if (o.json) return console.log(json(flavors));
    console.log(table(['Name', 'vCPUs', 'RAM', 'Disk', 'Built-in'],
      flavors.map((f) => [f.name, f.vcpus, ramText(f.ramMiB), `${f.diskGiB} GiB`, f.builtin ? 'yes' : 'no'])));
  });
  cmd.command('create').argument('<name>')
    .requiredOption('--vcpus <n>', 'virtual CPUs').requiredOption('--ram <MiB>', 'memory in MiB')
    .requiredOption('--disk-size <GiB>', 'root disk size in GiB')
    .action(async (name: string, o: { vcpus: string; ram: string; diskSize: string }) => {
      const f = new FlavorService(await context(), actor()).create(name, parseWhole(o.vcpus), parseWhole(o.ram), parseWhole(o.diskSize));
      console.log(`created flavor "${f.name}": ${f.vcpus} vCPU, ${ramText(f.ramMiB)} RAM, ${f.diskGiB} GiB disk`);
    });
  cmd.command('delete').addArgument(named('flavor', '<name>')).action(async (name: string) => {
    new FlavorService(await context(), actor()).delete(name);
    console.log(`deleted flavor "${name}"`);
  });
  return cmd;
}
