import { Command } from 'commander';
import { json } from '../render.js';
import { migrateStore, storeSchema, type StoreSchema } from '../../service/store-schema.js';

const describe = (s: StoreSchema) => s.schema === undefined
  ? `no store yet at ${s.file}; this kumo (${s.kumo}) writes schema ${s.known}`
  : `${s.file}: schema ${s.schema}${s.migratedBy ? ` (migrated by kumo ${s.migratedBy})` : ''}; this kumo (${s.kumo}) writes schema ${s.known}` +
    (s.schema > s.known ? ': NEWER than this kumo, which refuses to open it' : s.schema < s.known ? ': the next kumo command migrates it' : '');

/**
 * `kumo store`: the schema of KUMO_HOME's store against this kumo's (root on the machine). The
 * package's maintainer scripts migrate with it on install and upgrade; an older kumo refuses a
 * newer store rather than lose what the newer one wrote.
 */
export function storeCommand(): Command {
  const cmd = new Command('store').description('kumo\'s store (KUMO_HOME/kumo.db): its schema, and migrating it (root on the machine)');
  cmd.command('status').description('the store\'s schema, the kumo that migrated it last, and the schema this kumo writes')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => {
      const s = storeSchema();
      console.log(o.json ? json(s) : describe(s));
    });
  cmd.command('migrate').description('create KUMO_HOME with its modes and bring the store to this kumo\'s schema (what the package runs on install and upgrade); a newer store is refused unchanged')
    .action(() => {
      const r = migrateStore();
      const was = r.before === undefined ? 'created' : r.before === r.after.schema ? 'already' : `migrated from schema ${r.before} to`;
      console.log(`${r.after.file}: ${was} schema ${r.after.schema ?? r.after.known} (kumo ${r.after.kumo})`);
    });
  return cmd;
}
