import { KumoError } from '../../../model/errors.js';
import type { RemoteError } from './protocol.js';
import { type Endpoint, sshArgv } from './transport.js';

/** libvirt said no: its own message, and its error number (protocol.ts VIR_ERR_*) for callers to test. */
export class LibvirtRefusal extends KumoError {
  constructor(readonly remote: RemoteError) {
    super('LIBVIRT_ERROR', `libvirt refused: ${remote.message ?? `error ${remote.code}`}`);
  }
}

export function libvirtRefused(remote: RemoteError): LibvirtRefusal {
  return new LibvirtRefusal(remote);
}

function reconnectFix(ep: Endpoint): string {
  if (ep.kind === 'unix') {
    return 'start it: `virtlogd -d && libvirtd -d` (or `systemctl start libvirtd`), or run scripts/up.sh; kumo reconnects by itself on the next call';
  }
  return `check that libvirtd runs on ${ep.destination} and that \`ssh ${sshArgv(ep).map((a) => (a.includes(' ') ? `"${a}"` : a)).join(' ')}\` ` +
    'connects without a password; kumo reconnects by itself on the next call';
}

/** The daemon cannot be reached or went away: says which one, why, and how to bring it back. */
export function notAnswering(ep: Endpoint, reason: string): KumoError {
  return new KumoError('LIBVIRT_ERROR', `libvirt at ${ep.uri} does not answer (${reason})`, reconnectFix(ep));
}

const seconds = (ms: number) => `${ms < 10_000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000)} s`;

export function callTimedOut(ep: Endpoint, procedure: string, timeoutMs: number): KumoError {
  return new KumoError('TIMEOUT', `libvirt at ${ep.uri} did not answer ${procedure} within ${seconds(timeoutMs)}`,
    `check that libvirtd is not stuck (\`virsh -c ${ep.uri} list\` should answer at once); KUMO_LIBVIRT_TIMEOUT sets the limit for slow hosts`);
}

export function connectionClosed(uri: string): KumoError {
  return new KumoError('LIBVIRT_ERROR', `the connection to libvirt at ${uri} is closed`,
    'this is a bug in kumo: a call was made after its context closed; please report it');
}
