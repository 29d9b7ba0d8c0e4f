import { Command } from 'commander';
import { named } from '../names.js';
import { actor, context } from '../app.js';
import { json, table } from '../render.js';
import { ProjectService, type ProjectView } from '../../service/projects.js';
import { checkLimit, QUOTA_INFO, QUOTAS, type QuotaChange, type QuotaName } from '../../model/quotas.js';
import { parseWhole } from '../../model/sizes.js';

/** commander's camelCase key of each quota's flag: --max-ram → maxRam. */
const optionKey = (q: QuotaName) => QUOTA_INFO[q].flag.slice(2).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

const ARG: Record<QuotaName, string> = { instances: 'N', vcpus: 'N', ramMiB: 'MIB', diskGiB: 'GIB', volumes: 'N', networks: 'N', shares: 'N' };

function withQuotaOptions(cmd: Command, lift: boolean): Command {
  for (const q of QUOTAS) {
    cmd.option(`${QUOTA_INFO[q].flag} <${ARG[q]}>`, `at most this many ${QUOTA_INFO[q].many}${lift ? ' ("none": no cap)' : ''}`);
  }
  return cmd;
}

/** The caps given on the command line; "none" lifts one (set), a number is checked by the service. */
function quotaOptions(o: Record<string, string | undefined>): QuotaChange {
  const out: QuotaChange = {};
  for (const q of QUOTAS) {
    const v = o[optionKey(q)];
    if (v !== undefined) out[q] = v.trim() === 'none' ? null : checkLimit(q, parseWhole(v), v);
  }
  return out;
}

const cap = (p: ProjectView, q: QuotaName) => `${p.use[q]} / ${p.limits[q] ?? '-'}`;

function printProject(p: ProjectView): void {
  console.log(`project ${p.name} (created ${p.createdAt})`);
  console.log(table(['Quota', 'Used', 'Limit', 'Flag'], QUOTAS.map((q) => [q, p.use[q], p.limits[q] ?? 'no cap', QUOTA_INFO[q].flag])));
}

/** `kumo project`: root on the machine acts as admin, who alone makes, changes and deletes projects. */
export function projectCommand(): Command {
  const cmd = new Command('project').description('projects: each tenant\'s resources, capped by quotas (root acts as admin)');
  const svc = async () => new ProjectService(await context(), actor());

  withQuotaOptions(cmd.command('create').argument('<name>').description('make a project, with caps (no cap where none is given)'), false)
    .action(async (name: string, o: Record<string, string | undefined>) => {
      const limits = Object.fromEntries(Object.entries(quotaOptions(o)).filter(([, v]) => v !== null));
      printProject((await svc()).create(name, limits));
    });

  cmd.command('list').description('projects with their use against their caps').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const all = (await svc()).list();
      if (o.json) return console.log(json(all));
      console.log(table(['Name', ...QUOTAS], all.map((p) => [p.name, ...QUOTAS.map((q) => cap(p, q))])));
    });

  cmd.command('show').addArgument(named('project', '<name>')).description('one project: each quota\'s use and cap').option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }) => {
      const p = (await svc()).show(name);
      if (o.json) return console.log(json(p));
      printProject(p);
    });

  withQuotaOptions(cmd.command('set').addArgument(named('project', '<name>')).description('change caps; a cap below the use stops new creates only'), true)
    .action(async (name: string, o: Record<string, string | undefined>) => {
      printProject((await svc()).set(name, quotaOptions(o)));
    });

  cmd.command('delete').addArgument(named('project', '<name>')).description('delete an empty project (refused while it holds anything)')
    .action(async (name: string) => {
      (await svc()).delete(name);
      console.log(`deleted project ${name}`);
    });
  return cmd;
}
