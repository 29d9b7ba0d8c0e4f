import { join } from 'node:path';
import { type Executor, type OpenedProcess, type OpenOptions, type RunOptions, type RunResult, commandFailed, local } from './exec.js';
import { KumoError } from '../model/errors.js';

/**
 * Runs commands inside a network namespace of this machine (the lab's nodes): `nsenter --net`,
 * which, unlike `ip netns exec`, leaves the mount namespace and /sys alone.
 */
export class NetnsExecutor implements Executor {
  readonly description: string;
  readonly onThisMachine: boolean;
  private readonly path: string;

  /** `netns`: a name under /run/netns, or a path to a namespace file. */
  constructor(readonly netns: string, private readonly base: Executor = local) {
    this.path = netns.includes('/') ? netns : join('/run/netns', netns);
    this.description = `network namespace ${netns}`;
    this.onThisMachine = base.onThisMachine === true;
  }

  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const r = await this.base.run('nsenter', [`--net=${this.path}`, '--', command, ...args], { ...options, allowFailure: true });
    if (r.code === 0 || options.allowFailure) {
      if (r.code !== 0 && /^nsenter: /m.test(r.stderr)) throw this.nsenterError(command, r);
      return r;
    }
    if (/^nsenter: /m.test(r.stderr)) throw this.nsenterError(command, r);
    throw commandFailed(command, args, r);
  }

  /** The process inside the namespace: nsenter execs it, so its streams and exit are the process's. */
  open(command: string, args: readonly string[], options: OpenOptions = {}): Promise<OpenedProcess> {
    return this.base.open('nsenter', [`--net=${this.path}`, '--', command, ...args], options);
  }

  private nsenterError(command: string, r: RunResult): KumoError {
    if (/failed to execute/.test(r.stderr)) {
      return new KumoError('MISSING_DEPENDENCY', `'${command}' is not installed on this machine`,
        'run the README set-up command (scripts/up.sh), which installs every package kumo needs');
    }
    return new KumoError('HOST_UNREACHABLE', `cannot enter network namespace ${this.netns}: ${r.stderr.trim()}`,
      'is the lab up? (kumo lab status)');
  }
}
