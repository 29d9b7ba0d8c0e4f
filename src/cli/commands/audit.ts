import { Command, InvalidArgumentError } from 'commander';
import { context } from '../app.js';
import { json, table } from '../render.js';
import { AuditService } from '../../service/audit.js';

const count = (v: string): number => {
  if (!/^[1-9]\d{0,4}$/.test(v)) throw new InvalidArgumentError('a whole number from 1 to 10000');
  return Number(v);
};

/** `kumo audit`: who did what (root on the machine reads the store; over the API, GET /api/v1/audit). */
export function auditCommand(): Command {
  return new Command('audit').description('the audit log, newest first: who (API token, dashboard user or local user) did what, in which project,, to what, and the result')
    .option('--json', 'machine-readable output')
    .option('--limit <n>', 'how many entries (1-10000)', count, 50)
    .action(async (o: { json?: boolean; limit: number }) => {
      const entries = new AuditService(await context()).recent(o.limit);
      if (o.json) return console.log(json(entries));
      console.log(table(['Time', 'Actor', 'Project', 'Via', 'Action', 'Target', 'Result'],
        entries.map((e) => [e.at, e.actor, e.project ?? '', e.via, e.action, e.target ?? '', e.result])));
    });
}
