import { connect } from 'node:net';
import { type Executor, LocalExecutor } from '../../exec/exec.js';
import { NetnsExecutor } from '../../exec/netns.js';
import { KumoError, invalid } from '../../model/errors.js';
import { runTool } from '../host/which.js';
import { CONFIG_WORD, checkNameBy, isPort, readIpv4 } from '../../model/checks.js';

/**
 * What the service drivers (HAProxy, the nginx WAF) share: strict checks for every value that
 * goes into a daemon's config file, and pid-file daemons watched and signalled through an
 * Executor, so the same code drives a daemon here, in a network namespace or over ssh.
 */

/** An IPv4 address for a config file; `any` allows 0.0.0.0 (listen on every address). */
export function checkIpv4(value: unknown, what: string, opts: { any?: boolean } = {}): string {
  if (typeof value !== 'string' || !readIpv4(value).ok) {
    throw invalid(`${what} ${JSON.stringify(value)} is not an IPv4 address`, 'write it like 10.0.0.5 (names and IPv6 are not supported here)');
  }
  const first = Number(value.split('.')[0]);
  if ((value === '0.0.0.0' && !opts.any) || value === '255.255.255.255' || (first >= 224 && first <= 239)) {
    throw invalid(`${what} ${value} cannot be used here`, opts.any ? 'give a unicast address, or 0.0.0.0 for every address' : 'give the unicast address of one host');
  }
  return value;
}

export function checkPort(value: unknown, what: string): number {
  if (!isPort(value)) {
    throw invalid(`${what} ${JSON.stringify(value)} is not a TCP port`, 'use a whole number from 1 to 65535');
  }
  return value;
}

/** Names that appear in config files as bare words. */
export const checkName = (value: unknown, what: string): string => checkNameBy(CONFIG_WORD, value, what);

export function checkInt(value: unknown, what: string, min: number, max: number, unit = ''): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${what} ${JSON.stringify(value)} is out of range`, `use a whole number from ${min} to ${max}${unit}`);
  }
  return value;
}

/**
 * A daemon's own folder. It goes into config files (pid file, sockets, logs), so only plain
 * path characters; unix socket paths inside it must stay under the kernel's 108-byte limit.
 */
export function checkDir(value: unknown, what = 'folder'): string {
  if (typeof value !== 'string' || !/^\/[A-Za-z0-9._/-]*$/.test(value) || value.split('/').includes('..') || value.length > 80) {
    throw invalid(`${what} ${JSON.stringify(value)} cannot hold a daemon's files`,
      'give an absolute path of at most 80 characters with only letters, digits, ".", "-", "_" and "/"');
  }
  return value.replace(/\/+$/, '') || '/';
}

/** A path read from the node (e.g. a rule file found there), checked before it enters a config. */
export function checkConfigPath(value: string, what: string): string {
  if (!/^\/[A-Za-z0-9._/+-]*$/.test(value) || value.split('/').includes('..')) {
    throw new KumoError('COMMAND_FAILED', `${what} ${JSON.stringify(value)} has characters kumo will not put in a config file`,
      'rename the file, or remove it if it is not needed');
  }
  return value;
}

/**
 * How to reach a daemon's unix control socket. 'node': node:net from this process, right when
 * the socket is on this machine's filesystem (local, or a network namespace of this machine:
 * namespaces do not separate path sockets). 'executor': `socat` run through the executor,
 * needed for a node over ssh.
 */
export type SocketVia = 'node' | 'executor';

export function defaultSocketVia(exec: Executor): SocketVia {
  return exec instanceof LocalExecutor || exec instanceof NetnsExecutor ? 'node' : 'executor';
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
