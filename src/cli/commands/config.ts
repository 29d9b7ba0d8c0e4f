import { Command } from 'commander';
import { context } from '../app.js';
import { json, table } from '../render.js';
import { SettingsService } from '../../service/settings.js';

export function configCommand(): Command {
  const cmd = new Command('config').description('site settings');
  cmd.command('list').option('--json', 'machine-readable output').action(async (o: { json?: boolean }) => {
    const all = new SettingsService(await context()).list();
    if (o.json) return console.log(json(all));
    console.log(table(['Key', 'Value', 'Meaning'], all.map((s) => [s.key, s.value, s.help])));
  });
  cmd.command('get').argument('<key>').action(async (key: string) => {
    console.log(new SettingsService(await context()).get(key));
  });
  cmd.command('set').argument('<key>').argument('<value>').action(async (key: string, value: string) => {
    new SettingsService(await context()).set(key, value);
    console.log(`${key} = ${value}`);
  });
  return cmd;
}
