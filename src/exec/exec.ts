import { spawn } from 'node:child_process';
import { KumoError } from '../model/errors.js';
import { openLocal, type OpenedProcess, type OpenOptions } from './open.js';

export type { OpenedProcess, OpenOptions, ProcessExit } from './open.js';

/** What a finished command left behind. */
export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  /** Bytes written to the command's standard input (then closed). */
  input?: string | Buffer;
  /** Kill the command after this many milliseconds. */
  timeoutMs?: number;
  /** Resolve with a non-zero exit code instead of throwing. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Where a command runs: this machine, a network namespace, or a host over ssh.
 * Commands are argument arrays, never shell strings: no user text reaches `sh -c`.
 */
export interface Executor {
  readonly description: string;
  /**
   * true when the host's files and unix sockets are this machine's own (this machine, or one of
   * its network namespaces: namespaces do not separate paths), so node:fs and node:net reach
   * them directly; unset means only through run().
   */
  readonly onThisMachine?: boolean;
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Starts a long-lived process (a console, a tunnel) and hands back its streams; the caller ends it. */
  open(command: string, args: readonly string[], options?: OpenOptions): Promise<OpenedProcess>;
}

/** Runs commands on this machine. */
export class LocalExecutor implements Executor {
  readonly description = 'local';
  readonly onThisMachine = true;

  run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        env: options.env ?? process.env,
        cwd: options.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer = options.timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs)
        : undefined;
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (e.code === 'ENOENT') {
          reject(new KumoError('MISSING_DEPENDENCY', `'${command}' is not installed on this machine`,
            'run the README set-up command (scripts/up.sh), which installs every package kumo needs'));
        } else {
          reject(new KumoError('COMMAND_FAILED', `${command} could not start: ${e.message}`));
        }
      });
      child.stdin.on('error', () => undefined); // a command that exits early closes its stdin: not our error
      child.stdin.end(options.input ?? '');
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const result = {
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          code: code ?? 128,
        };
        if (timedOut) {
          reject(new KumoError('TIMEOUT', `${command} ${args.join(' ')} did not finish within ${options.timeoutMs} ms`));
        } else if (result.code !== 0 && !options.allowFailure) {
          reject(commandFailed(command, args, result, signal ?? undefined));
        } else {
          resolve(result);
        }
      });
    });
  }

  open(command: string, args: readonly string[], options: OpenOptions = {}): Promise<OpenedProcess> {
    return openLocal(command, args, options);
  }
}

export const local = new LocalExecutor();

/** The error for a command that ran and failed: its last lines of output say why. */
export function commandFailed(command: string, args: readonly string[], result: RunResult, signal?: string): KumoError {
  const detail = (result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n');
  return new KumoError('COMMAND_FAILED', `${command} ${args.join(' ')} failed (${signal ?? `exit ${result.code}`}): ${detail}`);
}

