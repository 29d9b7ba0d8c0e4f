import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { named, namedOption } from '../names.js';
import { password as prompt } from '@inquirer/prompts';
import { context, say } from '../app.js';
import { json, table } from '../render.js';
import { UserService } from '../../service/users.js';
import { DEFAULT_PROJECT, USER_ROLES } from '../../model/actor.js';
import { checkLoginPassword } from '../../model/login-password.js';
import { invalid, KumoError } from '../../model/errors.js';

/**
 * A user's password, never from the command line (it would show in `ps` and the shell's
 * history): from a file (`-`: standard input), its one trailing newline dropped, or typed
 * twice on a terminal.
 */
async function readPassword(file: string | undefined, what: string): Promise<string> {
  if (file !== undefined) {
    const text = file === '-' ? await readStdin() : await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw invalid(`cannot read the password file ${file}: ${e.code ?? e.message}`, 'give a readable file, or - for standard input');
    });
    return checkLoginPassword(text.replace(/\r?\n$/, ''));
  }
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new KumoError('NOT_INTERACTIVE', `${what} is typed on a terminal, and this input is not one`, 'give it in a file instead: --password-file FILE (or - for standard input)');
  }
  for (;;) {
    const first = checkLoginPassword(await prompt({ message: `${what}:`, mask: '*' }));
    if (await prompt({ message: 'again:', mask: '*' }) === first) return first;
    say('the two passwords differ; once more');
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** kumo user: root on the machine manages who may log in to the dashboard, and as what. */
export function userCommand(): Command {
  const cmd = new Command('user').description('users who log in to the dashboard with a password, each in one project with one role');

  cmd.command('create').argument('<name>', 'the user\'s login name')
    .description('make a user; the password is asked twice on the terminal, or read from --password-file (never given on the command line)')
    .addOption(namedOption('project', '--project <project>', 'the project the user works in').default(DEFAULT_PROJECT))
    .addOption(new Option('--role <role>', 'admin: everything, every project; member: create and change in its project; reader: see its project').choices([...USER_ROLES]).makeOptionMandatory())
    .option('--password-file <file>', 'read the password from this file (- for standard input)')
    .action(async (name: string, o: { project: string; role: string; passwordFile?: string }) => {
      const pw = await readPassword(o.passwordFile, `password for ${name}`);
      const u = await new UserService(await context()).create(name, o.project, o.role, pw);
      console.log(`created user "${u.name}", ${u.role} of project "${u.project}"`);
    });

  cmd.command('list').description('users with their project and role (never a password or its hash)').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const users = new UserService(await context()).list();
      if (o.json) return console.log(json(users));
      console.log(table(['Name', 'Project', 'Role', 'Created'], users.map((u) => [u.name, u.project, u.role, u.createdAt])));
    });

  cmd.command('delete').addArgument(named('user', '<name>')).description('delete a user; their dashboard sessions end at once')
    .action(async (name: string) => {
      const u = new UserService(await context()).delete(name);
      console.log(`deleted user "${u.name}"`);
    });

  cmd.command('passwd').addArgument(named('user', '<name>')).description('set a new password (asked twice, or --password-file); open sessions end')
    .option('--password-file <file>', 'read the password from this file (- for standard input)')
    .action(async (name: string, o: { passwordFile?: string }) => {
      const svc = new UserService(await context());
      svc.get(name); // an unknown user is refused before the password is asked
      const pw = await readPassword(o.passwordFile, `new password for ${name}`);
      await svc.passwd(name, pw);
      console.log(`set a new password for user "${name}"`);
    });
  return cmd;
}
