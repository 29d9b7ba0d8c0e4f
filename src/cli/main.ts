#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { actor, closeContext, context, setProject } from './app.js';
import { DEFAULT_PROJECT } from '../model/actor.js';
import { commandsFor } from './commands.js';
import { auditCli } from './audit-hook.js';
import { KumoError, type ErrorCode } from '../model/errors.js';
import { paths } from '../config.js';

/** Exit codes a script can act on (11 is `kumo doctor`'s "problems remain"). */
const EXIT: Partial<Record<ErrorCode, number>> = {
  INVALID_INPUT: 2, NOT_FOUND: 3, ALREADY_EXISTS: 4, IN_USE: 4, NOT_INTERACTIVE: 5, MISSING_DEPENDENCY: 6, TIMEOUT: 7, TOO_BUSY: 8, FORBIDDEN: 9, QUOTA_EXCEEDED: 10, NO_SPACE: 12, GUEST_FAILED: 13,
};

const program = new Command('kumo')
  .description('a small private cloud for KVM hosts')
  .version('0.1.0')
  // Root on the machine is an admin of every project; this picks the one it acts in. Given
  // before the command (kumo --project p1 instance list): a command's own --project (a token's
  // or a user's project) stays the command's.
  .enablePositionalOptions()
  .option('--project <name>', 'the project to act in, before the command: kumo --project p1 instance list', 'default');

program.command('create').description('the interactive wizard: OS, flavor, root password, network, confirm')
  .addOption(new Option('--lang <lang>', 'language of the questions').choices(['en', 'ko']))
  .option('--show-password', 'show the root password in the summary')
  .addOption(new Option('--console <mode>', 'console to connect while it boots').choices(['auto', 'none', 'serial', 'vnc']).default('auto'))
  .option('--wait', 'wait until the guest is ready, by its image\'s check')
  .option('--wait-for <check>', 'wait for this instead: http:PORT, ssh, cloud-init or agent (implies --wait)')
  .action(async (o: { lang?: string; showPassword?: boolean; console: string; wait?: boolean; waitFor?: string }) => {
    const [{ runWizard }, { parseConsoleMode, parseWait }] = await Promise.all([import('./wizard.js'), import('./launch.js')]);
    const { waitFor: _text, ...rest } = o;
    await runWizard({ ...rest, console: parseConsoleMode(o.console), ...parseWait(o) });
  });
// Only the command modules this command line needs are loaded (see commands.ts).
for (const lazy of commandsFor(process.argv.slice(2), program.commands.map((c) => c.name()))) {
  for (const c of await lazy.load()) program.addCommand(c);
}

/** Every command reports usage errors by throwing (exit code 2 below), not by exiting on its own. */
function throwOnUsageErrors(cmd: Command): void {
  cmd.exitOverride();
  cmd.commands.forEach(throwOnUsageErrors);
}
throwOnUsageErrors(program);

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
