import { KumoError, invalid } from '../../model/errors.js';
import { CONFIG_WORD, checkNameBy, isPort, readIpv4 } from '../../model/checks.js';

/** Strict checks for every value that goes into a daemon's config file (HAProxy, the nginx WAF). */

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
