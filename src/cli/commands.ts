import type { Command } from 'commander';

/**
 * The CLI's top-level commands, each loaded only when it is needed. A command module pulls in
 * its services, and through them the store, libvirt's driver, zod's schemas and so on: loading
 * all of them is most of a start-up. `kumo instance list` loads the instance commands only,
 * `kumo --version` none; only the program's own help (and an unknown command, for commander's
 * suggestion) loads them all, to list them.
 *
 * `names` are the commands a module defines, in the order `kumo --help` lists them; a unit test
 * checks them against what each module really defines.
 */
export interface LazyCommands {
  names: readonly string[];
  load: () => Promise<Command[]>;
  /** This command needs every other one loaded too (the completion script walks them all). */
  needsAll?: boolean;
}

export const COMMANDS: readonly LazyCommands[] = [
  { names: ['instance'], load: async () => [(await import('./commands/instance.js')).instanceCommand()] },
  { names: ['image'], load: async () => [(await import('./commands/image.js')).imageCommand()] },
  { names: ['flavor'], load: async () => [(await import('./commands/flavor.js')).flavorCommand()] },
  { names: ['host'], load: async () => [(await import('./commands/host.js')).hostCommand()] },
  { names: ['network'], load: async () => [(await import('./commands/network.js')).networkCommand()] },
  { names: ['share'], load: async () => [(await import('./commands/share.js')).shareCommand()] },
  { names: ['snapshot'], load: async () => [(await import('./commands/snapshot.js')).snapshotCommand()] },
  { names: ['volume'], load: async () => [(await import('./commands/volume.js')).volumeCommand()] },
  { names: ['config'], load: async () => [(await import('./commands/config.js')).configCommand()] },
  { names: ['lab'], load: async () => [(await import('./commands/lab.js')).labCommand()] },
  {
    names: ['lb', 'waf'],
    load: async () => {
      const m = await import('./commands/lb.js');
      return [m.lbCommand(), m.wafCommand()];
    },
  },
  { names: ['plan', 'apply', 'destroy', 'firewall'], load: async () => (await import('./commands/plan.js')).planCommands() },
  {
    names: ['top', 'stats', 'monitor'],
    load: async () => {
      const m = await import('./commands/monitor.js');
      return [m.topCommand(), m.statsCommand(), m.monitorCommand()];
    },
  },
  { names: ['serve'], load: async () => [(await import('./commands/serve.js')).serveCommand()] },
  { names: ['token'], load: async () => [(await import('./commands/token.js')).tokenCommand()] },
  { names: ['user'], load: async () => [(await import('./commands/user.js')).userCommand()] },
  { names: ['audit'], load: async () => [(await import('./commands/audit.js')).auditCommand()] },
  { names: ['project'], load: async () => [(await import('./commands/project.js')).projectCommand()] },
  { names: ['ha'], load: async () => [(await import('./commands/ha.js')).haCommand()] },
  { names: ['doctor'], load: async () => [(await import('./commands/doctor.js')).doctorCommand()] },
  { names: ['version'], load: async () => [(await import('./commands/version.js')).versionCommand()] },
  { names: ['completion'], load: async () => [(await import('./commands/completion.js')).completionCommand()], needsAll: true },
  // Hidden (program.ts hides every __ command): what the completion scripts run at TAB time.
  { names: ['__complete'], load: async () => [(await import('./commands/completion.js')).completeCommand()] },
  { names: ['store'], load: async () => [(await import('./commands/store.js')).storeCommand()] },
];

/** Options of the program itself that take a value (kumo --project p1 instance list). */
const VALUE_OPTIONS = new Set(['--project']);

/**
 * The command modules a command line needs: the one of its command; none for the version alone
 * (or for a command the program defines itself, the wizard); all of them to list them (help, no
 * command, an unknown one or a misspelt option, so that commander's answer is the same as ever).
 */
export function commandsFor(args: readonly string[], ownCommands: readonly string[]): readonly LazyCommands[] {
  let command: string | undefined;
  let asksVersion = false;
  let asksOther = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') { command = args[i + 1]; break; }
    if (!a.startsWith('-') || a === '-') { command = a; break; }
    if (VALUE_OPTIONS.has(a)) i++;
    else if (a === '-V' || a === '--version') asksVersion = true;
    else if (![...VALUE_OPTIONS].some((o) => a.startsWith(`${o}=`))) asksOther = true;
  }
  if (command !== undefined) {
    if (ownCommands.includes(command)) return [];
    const one = COMMANDS.find((c) => c.names.includes(command!));
    if (one?.needsAll) return COMMANDS;
    if (one) return [one];
  } else if (asksVersion && !asksOther) {
    return [];
  }
  return COMMANDS;
}
