import { Command } from 'commander';
import { context } from '../app.js';
import { json, table } from '../render.js';
import { SettingsService, defaultConfigFile } from '../../service/settings.js';

export function configCommand(): Command {
  const cmd = new Command('config').description('site settings (root on the machine)');
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
  // Needs no store: the package's /etc/kumo/kumo.conf is this output, made at build time.
  cmd.command('defaults').description('print a config file (/etc/kumo/kumo.conf) documenting every variable and setting at its default (anyone)')
    .action(() => { process.stdout.write(defaultConfigFile()); });
  return cmd;
}
