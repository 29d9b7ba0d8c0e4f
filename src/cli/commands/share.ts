import { Command } from 'commander';
import { named, namedOption } from '../names.js';
import { collect, actor, context } from '../app.js';
import { json, table } from '../render.js';
import { ShareService } from '../../service/shares.js';

export function shareCommand(): Command {
  const cmd = new Command('share').description('shared folders served over NFS to instance networks (the storage node)');
  cmd.command('create').argument('<name>')
    .addOption(namedOption('network', '--network <name>', 'network whose instances may mount it (repeatable)').argParser(collect).default([] as string[]).makeOptionMandatory())
    .option('--path <dir>', 'an existing folder to share (default: KUMO_HOME/shares/NAME)')
    .option('--read-only', 'instances may read, not write')
    .action(async (name: string, o: { network: string[]; path?: string; readOnly?: boolean }) => {
      const s = await new ShareService(await context(), actor()).create(name, { networks: o.network, ...(o.path ? { path: o.path } : {}), readOnly: o.readOnly ?? false }, 'machine'); // root on the machine may share any folder with --path
      console.log(`share ${s.name} serves ${s.path} to ${s.networks.join(', ')}`);
      for (const m of s.mounts) console.log(`  from ${m.network}: ${m.command}`);
    });
  cmd.command('list').option('--json', 'machine-readable output').action(async (o: { json?: boolean }) => {
    const shares = await new ShareService(await context(), actor()).list();
    if (o.json) return console.log(json(shares));
    console.log(table(['Name', 'Path', 'Networks', 'Access', 'Mount'],
      shares.map((s) => [s.name, s.path, s.networks.join(','), s.readOnly ? 'ro' : 'rw', s.mounts.map((m) => m.source).join(' ')])));
  });
  cmd.command('show').addArgument(named('share', '<name>')).option('--json', 'machine-readable output').action(async (name: string, o: { json?: boolean }) => {
    const s = await new ShareService(await context(), actor()).get(name);
    if (o.json) return console.log(json(s));
    console.log(`${'name'.padEnd(9)} ${s.name}\n${'path'.padEnd(9)} ${s.path}\n${'access'.padEnd(9)} ${s.readOnly ? 'read-only' : 'read-write'}`);
    for (const m of s.mounts) console.log(`${'mount'.padEnd(9)} ${m.command}   (from ${m.network})`);
  });
  cmd.command('delete').addArgument(named('share', '<name>')).description('stop serving it (the folder and its files stay)').action(async (name: string) => {
    await new ShareService(await context(), actor()).delete(name);
    console.log(`share ${name} deleted (its folder is kept)`);
  });
  return cmd;
}
