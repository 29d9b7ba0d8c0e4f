import { type Executor, type OpenedProcess, type OpenOptions, type RunOptions, type RunResult, commandFailed, local } from './exec.js';
import { KumoError, invalid } from '../model/errors.js';

export interface SshTarget {
  /** user@host (or host). */
  destination: string;
  port?: number;
  /** A private key file; default: ssh's own choice (agent, ~/.ssh/id_*). */
  identity?: string;
}

/** Quotes one word for the remote POSIX shell that ssh hands its command line to. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Runs commands on another machine over OpenSSH, non-interactively (key login only). ssh joins
 * its arguments into one line for the remote shell, so every word is quoted here: user text is
 * never interpreted there either.
 */
export class SshExecutor implements Executor {
  readonly description: string;
  readonly onThisMachine = false;

  constructor(readonly target: SshTarget, private readonly base: Executor = local) {
    // No leading "-": ssh would take the destination for an option (-J, -o ...).
    if (!/^([A-Za-z0-9._][A-Za-z0-9._-]*@)?[A-Za-z0-9.:][A-Za-z0-9.:-]*$/.test(target.destination)) {
      throw invalid(`"${target.destination}" is not an ssh destination`, 'write it as user@host or host');
    }
    this.description = `ssh ${target.destination}${target.port ? `:${target.port}` : ''}`;
  }

  /** The ssh options, without the command: also what `kumo host` shows to reproduce a call. */
  sshArgs(): string[] {
    return [
      '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'ServerAliveInterval=15',
      '-o', 'StrictHostKeyChecking=accept-new',
      ...(this.target.port ? ['-p', String(this.target.port)] : []),
      ...(this.target.identity ? ['-i', this.target.identity, '-o', 'IdentitiesOnly=yes'] : []),
      this.target.destination,
    ];
  }

  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (options.env) throw invalid('the ssh executor does not pass environments', 'put the variables in the command: env K=V cmd');
    const words = [command, ...args].map(shellQuote).join(' ');
    const line = options.cwd ? `cd ${shellQuote(options.cwd)} && exec ${words}` : `exec ${words}`;
    const r = await this.base.run('ssh', [...this.sshArgs(), '--', line], { ...options, allowFailure: true });
    if (r.code === 255) {
      throw new KumoError('HOST_UNREACHABLE', `ssh to ${this.target.destination} failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`,
        `check that "ssh ${this.sshArgs().join(' ')} true" works without a password`);
    }
    if (r.code === 127 && /not found/.test(r.stderr)) {
      throw new KumoError('MISSING_DEPENDENCY', `'${command}' is not installed on ${this.target.destination}`,
        'install kumo\'s host packages there (see the README, "Real hosts")');
    }
    if (r.code !== 0 && !options.allowFailure) throw commandFailed(command, args, r);
    return r;
  }

  /** The remote process through ssh's streams; a pty option asks ssh for a remote terminal too (-tt). */
  async open(command: string, args: readonly string[], options: OpenOptions = {}): Promise<OpenedProcess> {
    if (options.env) throw invalid('the ssh executor does not pass environments', 'put the variables in the command: env K=V cmd');
    const line = `exec ${[command, ...args].map(shellQuote).join(' ')}`;
    return this.base.open('ssh', [...(options.pty ? ['-tt'] : []), ...this.sshArgs(), '--', line], options);
  }
}
