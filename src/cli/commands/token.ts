import { Command, Option } from 'commander';
import { DEFAULT_PROJECT, USER_ROLES } from '../../model/actor.js';
import { context, say } from '../app.js';
import { json, table } from '../render.js';
import { TokenService } from '../../service/tokens.js';

export function tokenCommand(): Command {
  const cmd = new Command('token').description('bearer tokens for the REST API (kumo serve); kumo keeps only their sha256');

  cmd.command('create').argument('<name>', 'what it is for, e.g. ci or dashboard (not 8 hex digits: that is the form of an id)')
    .description('make a token and print it, once: it cannot be shown again')
    .option('--project <project>', 'the project it acts in', DEFAULT_PROJECT)
    .addOption(new Option('--role <role>', 'admin: everything, every project; member: create and change in its project; reader: see its project').choices([...USER_ROLES]).default('admin'))
    .action(async (name: string, o: { project: string; role: string }) => {
      const t = new TokenService(await context()).create(name, { project: o.project, role: o.role });
      // The token alone on stdout, so that TOKEN=$(kumo token create ci) works.
      console.log(t.token);
      say(`created API token "${t.name}" (id ${t.id}), ${t.role} of project "${t.project}"; it is shown only now: keep it safe`);
    });

  cmd.command('list').description('tokens by id and name (never the tokens themselves)').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const tokens = new TokenService(await context()).list();
      if (o.json) return console.log(json(tokens));
      console.log(table(['Id', 'Name', 'Project', 'Role', 'Created', 'Last used'], tokens.map((t) => [t.id, t.name, t.project, t.role, t.createdAt, t.lastUsedAt])));
    });

  cmd.command('revoke').argument('<token>', 'its id (see kumo token list) or its name').description('revoke a token: requests with it fail from now on')
    .action(async (idOrName: string) => {
      const t = new TokenService(await context()).revoke(idOrName);
      console.log(`revoked API token "${t.name}" (id ${t.id})`);
    });
  return cmd;
}
