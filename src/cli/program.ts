import { Command, Option } from 'commander';
import { commandsFor, COMMANDS } from './commands.js';
import { versionLine } from './build-info.js';
import { namedOption } from './names.js';

/**
 * kumo's command tree: the program with its own options and the wizard, plus the command modules
 * `args` needs (commands.ts), or every one of them for `args` 'all' (the manual pages, built from
 * these very definitions). Parsing and the hooks stay in main.ts.
 */
export async function buildProgram(args: readonly string[] | 'all'): Promise<Command> {
  const program = new Command('kumo')
    .description('a small private cloud for KVM hosts')
    .version(versionLine(), '-V, --version', 'print kumo\'s version and the git commit it was built from (kumo version: also libvirt, QEMU and the daemons it finds)')
    // Root on the machine is an admin of every project; this picks the one it acts in. Given
    // before the command (kumo --project p1 instance list): a command's own --project (a token's
    // or a user's project) stays the command's.
    .enablePositionalOptions()
    .addOption(namedOption('project', '--project <name>', 'the project to act in, before the command: kumo --project p1 instance list').default('default'));

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
  const lazies = args === 'all' ? COMMANDS : commandsFor(args, program.commands.map((c) => c.name()));
  for (const lazy of lazies) {
    for (const c of await lazy.load()) program.addCommand(c, c.name().startsWith('__') ? { hidden: true } : {});
  }
  throwOnUsageErrors(program);
  return program;
}

/** Every command reports usage errors by throwing (exit code 2 in main.ts), not by exiting on its own. */
function throwOnUsageErrors(cmd: Command): void {
  cmd.exitOverride();
  cmd.commands.forEach(throwOnUsageErrors);
}
