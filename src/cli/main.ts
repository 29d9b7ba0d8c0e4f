#!/usr/bin/env node
import { CommanderError } from 'commander';
import { actor, closeContext, context, setProject } from './app.js';
import { DEFAULT_PROJECT } from '../model/actor.js';
import { buildProgram } from './program.js';
import { auditCli } from './audit-hook.js';
import { KumoError, type ErrorCode } from '../model/errors.js';
import { paths } from '../config.js';

/** Exit codes a script can act on (11 is `kumo doctor`'s "problems remain"). */
const EXIT: Partial<Record<ErrorCode, number>> = {
  INVALID_INPUT: 2, NOT_FOUND: 3, ALREADY_EXISTS: 4, IN_USE: 4, NOT_INTERACTIVE: 5, MISSING_DEPENDENCY: 6, TIMEOUT: 7, TOO_BUSY: 8, FORBIDDEN: 9, QUOTA_EXCEEDED: 10, NO_SPACE: 12, GUEST_FAILED: 13,
};

const program = await buildProgram(process.argv.slice(2));

const audit = auditCli(program);
// After the audit hook: a command refused for its --project is audited too.
program.hook('preAction', async (cmd, action) => {
  const project = (cmd.opts() as { project?: string }).project;
  setProject(project);
  // A mistyped --project is refused before anything runs (the project commands name theirs).
  if (project && project !== DEFAULT_PROJECT && action.parent?.name() !== 'project') {
    const { actingProject } = await import('../service/scope.js');
    actingProject(await context(), actor());
  }
});
try {
  await program.parseAsync(process.argv);
  await audit.done(undefined);
} catch (thrown) {
  // A full KUMO_HOME may strike outside any operation (opening the store, recovery): said so too.
  // Loaded on a real failure only (--version and --help end here too): start-up stays light.
  const e = thrown instanceof CommanderError ? thrown
    : (await import('../service/disk-full.js')).noSpaceError(thrown, paths().home, 'kumo\'s store or files') ?? thrown;
  await audit.done(e);
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else if (e instanceof KumoError) {
    process.stderr.write(`error: ${e.describe()}\n`);
    process.exitCode = EXIT[e.code] ?? 1;
  } else if (e instanceof Error && e.name === 'ExitPromptError') {
    process.stderr.write('cancelled\n');
    process.exitCode = 130;
  } else {
    process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
} finally {
  closeContext();
}
