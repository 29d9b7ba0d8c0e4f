import { Argument, Command } from 'commander';
import { bashScript, zshScript } from '../completion.js';
import { isNameKind } from '../../model/name-kinds.js';
import { completionNames } from '../../service/completion-names.js';

/**
 * `kumo completion bash|zsh` prints the script (its tables come from the program's definitions:
 * commands.ts loads every command module for it). Anyone may run it: it reads nothing.
 */
export function completionCommand(): Command {
  return new Command('completion')
    .description('print the shell completion script (anyone may run it): kumo completion bash > /usr/share/bash-completion/completions/kumo, or source <(kumo completion bash); zsh: kumo completion zsh > /usr/share/zsh/vendor-completions/_kumo')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh', _o: unknown, cmd: Command) => {
      const program = cmd.parent!;
      process.stdout.write(shell === 'bash' ? bashScript(program) : zshScript(program));
    });
}

/**
 * The names the scripts offer at TAB time, one a line: the local store only (no libvirt, no
 * network). Silent on every error, an unknown kind included: whatever it prints lands in the
 * user's shell. Who cannot read the store (it is root's) gets no names.
 */
export function completeCommand(): Command {
  return new Command('__complete')
    .description('names of KIND beginning with PREFIX, for the completion scripts (hidden)')
    .argument('<kind>').argument('[prefix]', '', '')
    .action((kind: string, prefix: string) => {
      if (!isNameKind(kind)) return;
      const names = completionNames(kind, prefix);
      if (names.length) process.stdout.write(`${names.join('\n')}\n`);
    });
}
