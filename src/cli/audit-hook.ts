import type { Command } from 'commander';
import { KumoError } from '../model/errors.js';
import type { AuditRecord } from '../service/audit.js';
import { actor, openedContext } from './app.js';

/** Commands that only read: not audited (the log is of changes and of console access). */
const READ_ONLY = new Set(['list', 'show', 'xml', 'wait', 'status', 'log', 'info', 'get', 'accel', 'top', 'stats', 'plan', 'audit', 'serve', 'version', 'completion', '__complete', 'defaults']);

/**
 * The CLI's audit line: which command the local user ran (its name and first argument, a
 * resource's name; never options, which may hold a password) and how it ended. Root on the
 * machine can of course edit the store; the log is for the record, not against root.
 */
export function auditCli(program: Command): { done(error: unknown): Promise<void> } {
  let pending: Omit<AuditRecord, 'result'> | undefined;
  // The audit service (and the store under it) is loaded only when a command that changes
  // something runs: `kumo --version`, `--help` and the read-only commands never pay for it.
  const service = () => import('../service/audit.js');
  program.hook('preAction', async (_root, action) => {
    const path: string[] = [];
    for (let c: Command | null = action; c && c !== program; c = c.parent) path.unshift(c.name());
    if (!path.length || READ_ONLY.has(action.name())) return;
    const first = action.processedArgs[0];
    const { localActor } = await service();
    pending = { actor: localActor(), project: actor().project, via: 'cli', action: path.join(' '), ...(typeof first === 'string' ? { target: first } : {}) };
  });
  return {
    async done(error: unknown): Promise<void> {
      if (!pending) return;
      const entry: AuditRecord = { ...pending, result: error === undefined ? 'ok' : error instanceof KumoError ? error.code : 'INTERNAL' };
      pending = undefined;
      try {
        const { AuditService, recordStandalone } = await service();
        const ctx = openedContext();
        if (ctx) new AuditService(ctx).record(entry);
        else recordStandalone(entry);
      } catch (e) {
        // The command's own outcome matters more than its audit line; say so, do not fail it.
        process.stderr.write(`kumo: could not write the audit log: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    },
  };
}
