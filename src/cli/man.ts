import type { Command, Help } from 'commander';

/**
 * Manual pages from the program's own definitions, the same commander tree `kumo --help` prints:
 * kumo.1 (the program, its options, every command) and kumo-COMMAND.1 per top-level command
 * (each subcommand with its arguments and options). Made by the build (scripts/build-man.mjs)
 * into dist/man/, for a package to install under /usr/share/man/man1.
 */
export interface ManPage {
  file: string;
  text: string;
}

/** Text safe in roff: backslashes escaped, hyphens as minus signs (flags copy and paste), no line starting a request. */
export function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').split('\n').map((l) => (/^[.']/.test(l) ? `\\&${l}` : l)).join('\n');
}

/** A macro's argument: in double quotes, which roff writes as \(dq inside one. */
const arg = (text: string) => `"${roff(text).replace(/"/g, '\\(dq')}"`;

const visible = (help: Help, cmd: Command) => help.visibleCommands(cmd).filter((c) => c.name() !== 'help' || cmd.commands.includes(c));

function header(title: string, meta: { version: string; date: string }): string[] {
  return [`.TH ${arg(title.toUpperCase())} 1 ${arg(meta.date)} ${arg(`kumo ${meta.version}`)} "kumo manual"`];
}

/** The options, without each command's -h, --help (kumo.1 says it once). */
function optionsList(help: Help, cmd: Command, withHelp = false): string[] {
  return help.visibleOptions(cmd).filter((o) => withHelp || o.long !== '--help').flatMap((o) => ['.TP', `.B ${roff(help.optionTerm(o))}`, roff(help.optionDescription(o))]);
}

function argumentsList(help: Help, cmd: Command): string[] {
  return cmd.registeredArguments.filter((a) => a.description)
    .flatMap((a) => ['.TP', `.I ${roff(help.argumentTerm(a))}`, roff(help.argumentDescription(a))]);
}

/** One command: its usage as a subsection, what it does, its arguments and options. */
function commandSection(help: Help, cmd: Command, path: string): string[] {
  const usage = `${path} ${cmd.usage()}`;
  const text = help.commandDescription(cmd);
  return [`.SS ${arg(usage)}`, ...(text ? [roff(text)] : []), ...argumentsList(help, cmd), ...optionsList(help, cmd)];
}

function programPage(program: Command, help: Help, meta: { version: string; date: string }): ManPage {
  const commands = visible(help, program);
  const lines = [
    ...header('kumo', meta),
    '.SH NAME', `kumo \\- ${roff(program.description())}`,
    '.SH SYNOPSIS', '.B kumo', '.RI [ options ]', '.I command', '.RI [ arguments ]',
    '.SH DESCRIPTION',
    'kumo turns a Linux machine with libvirt into a small cloud. Each command below has its own page,',
    '.BR kumo\\-COMMAND (1),',
    'and',
    '.B kumo help',
    '.I command',
    'prints the same.',
    '.SH OPTIONS', ...optionsList(help, program, true),
    '.SH COMMANDS',
    ...commands.flatMap((c) => ['.TP', `.BR kumo\\-${roff(c.name())} (1)`, roff(help.subcommandDescription(c))]),
    '.SH SEE ALSO', commands.map((c) => `.BR kumo\\-${roff(c.name())} (1)`).join(',\n'),
  ];
  return { file: 'kumo.1', text: `${lines.join('\n')}\n` };
}

function commandPage(cmd: Command, help: Help, meta: { version: string; date: string }): ManPage {
  const name = `kumo-${cmd.name()}`;
  const subs = visible(help, cmd);
  const lines = [
    ...header(name, meta),
    '.SH NAME', `${roff(name)} \\- ${roff(help.commandDescription(cmd) || `kumo ${cmd.name()}`)}`,
    '.SH SYNOPSIS', `.B kumo ${roff(cmd.name())}`, subs.length ? '.I command\n.RI [ options ]\n.RI [ arguments ]' : roff(cmd.usage()),
  ];
  if (subs.length) {
    lines.push('.SH COMMANDS', ...subs.flatMap((s) => commandSection(help, s, `kumo ${cmd.name()} ${s.name()}`)));
    const own = optionsList(help, cmd);
    if (own.length) lines.push('.SH OPTIONS', ...own);
  } else {
    const text = help.commandDescription(cmd);
    lines.push('.SH DESCRIPTION', ...(text ? [roff(text)] : []), ...argumentsList(help, cmd));
    const own = optionsList(help, cmd);
    if (own.length) lines.push('.SH OPTIONS', ...own);
  }
  lines.push('.SH SEE ALSO', '.BR kumo (1)');
  return { file: `${name}.1`, text: `${lines.join('\n')}\n` };
}

/** Every page: kumo.1 first, then one per visible top-level command. */
export function manPages(program: Command, meta: { version: string; date: string }): ManPage[] {
  const help = program.createHelp();
  // Man pages wrap text themselves: no columns from commander.
  help.helpWidth = 10_000;
  return [programPage(program, help, meta), ...visible(help, program).map((c) => commandPage(c, help, meta))];
}
