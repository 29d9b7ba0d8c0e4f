import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { invalid } from '../../../model/errors.js';
import { libvirtUriFault } from '../../../model/libvirt-uri.js';
import { shellQuote, SshExecutor } from '../../../exec/ssh.js';

/**
 * Where the bytes of one protocol connection go: the daemon's unix socket on this machine, or
 * an ssh process whose far end is joined to the daemon's socket. The protocol on top is the
 * same. A test-driver URI (test+unix:///FILE.xml?socket=) is a unix socket whose daemon opens
 * test:///FILE.xml for the connection. TLS (qemu+tls) is not spoken here yet: those hosts stay on virsh (docs/decisions.md).
 */
export type Endpoint =
  | { kind: 'unix'; uri: string; socket: string; openUri: string }
  | { kind: 'ssh'; uri: string; destination: string; port?: number; keyfile?: string; noVerify: boolean; openUri: string };

/** libvirt's system socket on Debian (/var/run is a link to /run there). */
export const SYSTEM_SOCKET = '/run/libvirt/libvirt-sock';

const TEST_PARTS = /^test\+unix:\/\/(\/[^?]+)\?socket=(.+)$/;
const PARTS = /^qemu(?:\+([a-z]+))?:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^/:]*)(?::(\d+))?\/(system|session)(?:\?(.*))?$/;

/**
 * The endpoint of a libvirt URI kumo allows (model/libvirt-uri.ts: the caller has checked it
 * for its reach; this checks the allow-list again, at root's reach, so nothing outside it is
 * ever opened). Only /system: a session daemon is per user and started on demand by libvirt's
 * own client, which this is not.
 */
export function endpointOf(uri: string): Endpoint {
  const fault = libvirtUriFault(uri, { reach: 'machine' });
  // libvirt's test driver behind a libvirtd (model/libvirt-uri.ts): the daemon opens test:///FILE for this connection.
  const test = fault ? undefined : TEST_PARTS.exec(uri);
  if (test) return { kind: 'unix', uri, socket: test[2]!, openUri: `test://${test[1]!}` };
  const m = PARTS.exec(uri);
  if (fault || !m) throw invalid(`the libvirt URI "${uri}" ${fault?.problem ?? 'is not one kumo takes'}`, fault?.fix ?? 'e.g. qemu:///system');
  const [, transport = '', user, host = '', port, path, query = ''] = m;
  const params = new Map(query ? query.split('&').map((p) => [p.split('=')[0]!, p.slice(p.indexOf('=') + 1)] as const) : []);
  if (path !== 'system') {
    throw invalid(`the libvirt URI "${uri}" names a session daemon, which kumo's protocol connection does not open`, 'use the system daemon: qemu:///system or qemu+ssh://root@HOST/system');
  }
  const openUri = 'qemu:///system';
  if (transport === 'tls') {
    throw invalid(`the libvirt URI "${uri}" uses TLS, which kumo's protocol connection does not speak yet`, 'qemu+tls hosts are reached through virsh for now; or register the host as qemu+ssh://root@HOST/system');
  }
  if (transport === 'ssh') {
    const keyfile = params.get('keyfile');
    return {
      kind: 'ssh', uri, destination: `${user ? `${user}@` : ''}${host.replace(/^\[(.*)\]$/, '$1')}`, noVerify: params.get('no_verify') === '1', openUri,
      ...(port ? { port: Number(port) } : {}), ...(keyfile ? { keyfile } : {}),
    };
  }
  return { kind: 'unix', uri, socket: params.get('socket') ?? SYSTEM_SOCKET, openUri };
}

/** What the transport tells the protocol layer: bytes, and once, that it is gone and why. */
export interface TransportEvents {
  data(chunk: Buffer): void;
  closed(reason: string): void;
}

export interface Transport {
  write(bytes: Buffer): void;
  destroy(): void;
}

export interface TransportOptions {
  /** The ssh program (tests give a stand-in that joins its streams to a local socket). */
  sshProgram?: string;
}

export function openTransport(ep: Endpoint, events: TransportEvents, opts: TransportOptions = {}): Promise<Transport> {
  return ep.kind === 'unix' ? openUnix(ep.socket, events) : openSsh(ep, events, opts.sshProgram ?? 'ssh');
}

const GONE = 'it closed the connection: libvirtd stopped or restarted?';

function unixReason(e: NodeJS.ErrnoException, path: string): string {
  if (e.code === 'ENOENT') return `its socket ${path} does not exist: libvirtd not running?`;
  if (e.code === 'ECONNREFUSED') return `nothing listens on ${path}: libvirtd not running?`;
  if (e.code === 'EPIPE' || e.code === 'ECONNRESET') return GONE;
  if (e.code === 'EACCES') return `no permission to open ${path}: kumo runs as root on a hypervisor`;
  return `${path}: ${e.message}`;
}

function openUnix(path: string, events: TransportEvents): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(path);
    let up = false;
    let lastError: string | undefined;
    socket.once('connect', () => {
      up = true;
      socket.unref(); // an idle connection never keeps a process alive; calls in flight do (their timers)
      resolve({ write: (b) => socket.write(b), destroy: () => socket.destroy() });
    });
    socket.on('data', (chunk) => events.data(chunk));
    socket.on('error', (e) => {
      lastError = unixReason(e, path);
      if (!up) reject(new Error(lastError));
    });
    // A reset and a plain close mean the same to callers: the connection is gone.
    socket.on('close', () => { if (up) events.closed(lastError ?? GONE); });
  });
}

/**
 * The far side's command: virt-ssh-helper (Debian's libvirt-daemon ships it, libvirt ≥ 6.8:
 * it finds the daemon's socket itself), else netcat on the system socket for older hosts.
 */
export function remoteBridgeCommand(openUri: string): string {
  const script = `if command -v virt-ssh-helper >/dev/null 2>&1; then exec virt-ssh-helper ${openUri}; ` +
    `else exec nc -U ${SYSTEM_SOCKET}; fi`;
  return `sh -c ${shellQuote(script)}`;
}

/** ssh's arguments: kumo's usual options (exec/ssh.ts), no terminal, then the bridge command. */
export function sshArgv(ep: Extract<Endpoint, { kind: 'ssh' }>): string[] {
  const base = new SshExecutor({ destination: ep.destination, ...(ep.port ? { port: ep.port } : {}), ...(ep.keyfile ? { identity: ep.keyfile } : {}) });
  // ssh keeps the first value it is given for an option: no_verify must come before kumo's default.
  return ['-T', ...(ep.noVerify ? ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'] : []), ...base.sshArgs(), '--', remoteBridgeCommand(ep.openUri)];
}

function openSsh(ep: Extract<Endpoint, { kind: 'ssh' }>, events: TransportEvents, program: string): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, sshArgv(ep), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let up = false;
    child.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString('utf8')).slice(-2000); });
    child.stdout.on('data', (chunk: Buffer) => events.data(chunk));
    child.stdin.on('error', () => undefined); // a dead ssh is reported by its exit below
    child.once('error', (e) => { if (!up) reject(new Error(`cannot run ${program}: ${e.message}`)); });
    child.once('spawn', () => {
      up = true;
      child.unref();
      for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as Socket).unref?.();
      resolve({ write: (b) => child.stdin.write(b), destroy: () => child.kill('SIGTERM') });
    });
    child.once('close', (code, signal) => {
      const last = stderr.trim().split('\n').slice(-2).join(' ');
      if (up) events.closed(`ssh to ${ep.destination} ended (${signal ?? `exit ${code}`})${last ? `: ${last}` : ''}`);
    });
  });
}
