import { connect } from 'node:net';
import type { Executor } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';
import { runTool } from '../host/which.js';

/**
 * How to reach a daemon's unix control socket. 'node': node:net from this process, right when
 * the socket is on this machine's filesystem (local, or a network namespace of this machine:
 * namespaces do not separate path sockets), as Executor.onThisMachine declares. 'executor':
 * `socat` run through the executor, needed for a node over ssh.
 */
export type SocketVia = 'node' | 'executor';

export function defaultSocketVia(exec: Executor): SocketVia {
  return exec.onThisMachine === true ? 'node' : 'executor';
}

/** Sends one command line to a unix socket and returns everything it answers until it closes. */
export async function socketRequest(exec: Executor, via: SocketVia, path: string, command: string, timeoutMs = 5000): Promise<string> {
  if (via === 'executor') {
    const r = await runTool(exec, 'socat', ['-t', String(timeoutMs / 1000), '-T', String(timeoutMs / 1000), 'STDIO', `UNIX-CONNECT:${path}`],
      { input: `${command}\n`, timeoutMs: timeoutMs + 2000 },
      { says: `socat is not installed on ${exec.description}`, fix: 'apt-get install --no-install-recommends socat' });
    return r.stdout;
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(path);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new KumoError('TIMEOUT', `${path} did not answer "${command}" within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.end(`${command}\n`)); // half-close: the daemon answers, then closes
    sock.on('data', (b: Buffer) => chunks.push(b));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new KumoError('COMMAND_FAILED', `cannot talk to ${path}: ${e.code ?? e.message}`, 'is the daemon running? (its pid file is in the same folder)'));
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}
