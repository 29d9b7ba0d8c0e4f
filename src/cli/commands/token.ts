import { Command, Option } from 'commander';
import { namedOption } from '../names.js';
import { DEFAULT_PROJECT, USER_ROLES } from '../../model/actor.js';
import { context, say } from '../app.js';
import { json, table } from '../render.js';
import { TokenService } from '../../service/tokens.js';
import { CLOUD_NAME, cloudsYaml, identityUrl } from '../../service/clouds-yaml.js';
import { invalid } from '../../model/errors.js';

export function tokenCommand(): Command {
  const cmd = new Command('token').description('bearer tokens for the REST API (kumo serve); kumo keeps only their sha256');

  cmd.command('create').argument('<name>', 'what it is for, e.g. ci or dashboard (not 8 hex digits: that is the form of an id)')
    .description('make a token and print it, once: it cannot be shown again')
    .addOption(namedOption('project', '--project <project>', 'the project it acts in').default(DEFAULT_PROJECT))
    .addOption(new Option('--role <role>', 'admin: everything, every project; member: create and change in its project; reader: see its project').choices([...USER_ROLES]).default('admin'))
    .option('--clouds-yaml', 'print a clouds.yaml for OpenStack clients (openstack, openstacksdk) instead of the bare token: the token as an application credential')
    .option('--auth-url <url>', 'with --clouds-yaml: Keystone\'s URL as clients reach it (default: the address kumo serve last listened on, /identity)')
    .action(async (name: string, o: { project: string; role: string; cloudsYaml?: boolean; authUrl?: string }) => {
      const ctx = await context();
      if (o.authUrl !== undefined && !o.cloudsYaml) throw invalid('--auth-url goes with --clouds-yaml', `add --clouds-yaml: kumo token create ${name} --clouds-yaml --auth-url ${o.authUrl}`);
      // The URL is settled before the token is made: a refusal leaves no token behind.
      const authUrl = o.cloudsYaml ? identityUrl(ctx, o.authUrl) : undefined;
      const t = new TokenService(ctx).create(name, { project: o.project, role: o.role });
      // The token (or the file) alone on stdout, so that TOKEN=$(kumo token create ci) works.
      if (authUrl) process.stdout.write(cloudsYaml(ctx, authUrl, { id: t.id, secret: t.token, name: t.name, project: t.project, role: t.role }));
      else console.log(t.token);
      say(`created API token "${t.name}" (id ${t.id}), ${t.role} of project "${t.project}"; it is shown only now: keep it safe` +
        (authUrl ? ` (OpenStack clients: OS_CLOUD=${CLOUD_NAME}, Keystone at ${authUrl})` : ''));
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
