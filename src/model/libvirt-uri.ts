import { posix } from 'node:path';
import { invalid, type KumoError } from './errors.js';
import type { Reach } from './reach.js';

/**
 * The libvirt URIs kumo registers hosts by. libvirt's URI is an interface to local programs:
 * `qemu+ext:///system?command=PROG` runs PROG, `?netcat=`/`?command=` choose the programs the ssh
 * transport runs, `?socket=` connects to any unix socket, `?no_verify=1` skips the host key,
 * `?pkipath=`/`?keyfile=`/`?known_hosts=` name server files. So the transports and parameters
 * are an allow-list, and the checker is pure (the hosts service and the datacenter file both use it).
 *
 * Transports: qemu:// (this machine), qemu+ssh:// (the course's real hosts), qemu+tls:// (libvirt's
 * own TLS), qemu+unix:// (the lab's namespaced libvirtds). Not qemu+tcp (no authentication or
 * encryption unless the site set up SASL: a registered host would be anyone's), not ext, not
 * libssh/libssh2 (kumo's shell goes through OpenSSH; one ssh path is enough).
 *
 * Parameters: from the cloud, only `socket=` on qemu+unix and only to a lab libvirtd kumo made
 * (KUMO_HOME/lab/libvirt/NODE/run/libvirt-sock: `kumo lab up` and the datacenter file's hosts
 * use those); root on the machine may also point `socket=` anywhere, give ssh a `keyfile=` and
 * skip its host key check (`no_verify=1`).
 *
 * libvirt's test driver, behind a libvirtd: `test+unix:///ABS/NODE.xml?socket=ABS/SOCK` makes that
 * daemon open `test:///ABS/NODE.xml`, a fake node (CPUs, memory, domains, networks) described by
 * the file and kept in the daemon's memory per connection. It lets `kumo plan` and the benches
 * face many hypervisors on one machine. Only root on the machine registers one (`kumo host add
 * --uri`): the daemon reads the file as root, so the cloud may not name files on the server.
 */

const SHAPE = /^qemu(?:\+([a-z0-9]+))?:\/\/(?:([A-Za-z0-9._-]+)@)?([A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?\/(system|session)(?:\?(.*))?$/;
const TRANSPORTS = ['', 'ssh', 'tls', 'unix'] as const;
const PATH_VALUE = /^\/[A-Za-z0-9._/-]+$/;
const LAB_SOCKET = /^lab\/libvirt\/[A-Za-z0-9][A-Za-z0-9-]{0,62}\/run\/libvirt-sock$/;
const EXAMPLE = 'e.g. qemu+ssh://root@kvm2/system, qemu+tls://kvm2/system or qemu:///system';

export interface LibvirtUriOptions {
  reach: Reach;
  /**
   * KUMO_HOME: from the cloud, a socket= must be one of the lab's under it. Without it (a file's
   * schema, which does not know KUMO_HOME) only the socket's shape is checked; the hosts service
   * checks the place again before it registers anything.
   */
  home?: string;
}

/** What is wrong with a libvirt URI for this caller, or undefined when kumo may use it. */
export function libvirtUriFault(uri: string, opts: LibvirtUriOptions): { problem: string; fix: string } | undefined {
  if (uri.includes('%') || uri.includes('#')) return { problem: 'has %-escapes or a fragment', fix: EXAMPLE };
  if (/^test[:+]/.test(uri)) return testUriFault(uri, opts);
  const m = SHAPE.exec(uri);
  if (!m) {
    const scheme = /^([a-z0-9+]+):/.exec(uri)?.[1];
    if (scheme && /^qemu\+[a-z0-9]+$/.test(scheme) && !TRANSPORTS.includes(scheme.slice(5) as never)) {
      return { problem: `uses the ${scheme.slice(5)} transport, which kumo does not allow`, fix: `use qemu+ssh or qemu+tls (${EXAMPLE})` };
    }
    return { problem: 'is not a libvirt URI kumo takes (qemu[+ssh|+tls|+unix]://[USER@HOST[:PORT]]/system or /session)', fix: EXAMPLE };
  }
  const [, transport = '', user, host = '', , , query] = m;
  if (!(TRANSPORTS as readonly string[]).includes(transport)) {
    return { problem: `uses the ${transport} transport, which kumo does not allow`, fix: `use qemu+ssh or qemu+tls (${EXAMPLE})` };
  }
  const remote = transport === 'ssh' || transport === 'tls';
  if (remote && !host) return { problem: `names no host for qemu+${transport}`, fix: EXAMPLE };
  if (!remote && (host || user)) return { problem: `names a host, but ${transport ? 'qemu+unix' : 'qemu'}:// is this machine`, fix: 'use qemu:///system, or qemu+ssh://root@HOST/system for another machine' };
  return query === undefined ? undefined : paramsFault(query, transport, opts);
}

function paramsFault(query: string, transport: string, opts: LibvirtUriOptions): { problem: string; fix: string } | undefined {
  const seen = new Set<string>();
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    if (seen.has(key)) return { problem: `gives "${key}" twice`, fix: 'give each parameter once' };
    seen.add(key);
    // Root may also skip ssh's host key check (no_verify=1: root's own choice about its own login).
    const rootSsh = opts.reach === 'machine' && transport === 'ssh';
    if (rootSsh && key === 'no_verify') {
      if (value !== '1' && value !== '0') return { problem: `has no_verify="${value}"`, fix: 'give no_verify=1 or leave it out' };
      continue;
    }
    const allowed = (transport === 'unix' && key === 'socket') || (rootSsh && key === 'keyfile');
    if (!allowed) {
      return {
        problem: `has the parameter "${key}", which kumo does not pass to libvirt${opts.reach === 'cloud' ? ' from the API or a datacenter file' : ''}`,
        fix: `leave it out (${EXAMPLE}); libvirt URI parameters can run programs or open files on the server`,
      };
    }
    if (!PATH_VALUE.test(value)) return { problem: `has ${key}="${value}", which is not a plain absolute path`, fix: 'give an absolute path of letters, digits, ".", "_", "-" and "/"' };
    if (key === 'socket' && opts.reach === 'cloud' && opts.home !== undefined) {
      const under = posix.relative(posix.normalize(opts.home), posix.normalize(value));
      if (!LAB_SOCKET.test(under)) {
        return {
          problem: `connects to the socket ${value}, which is not a lab libvirtd kumo made (KUMO_HOME/lab/libvirt/NODE/run/libvirt-sock)`,
          fix: 'use a lab hypervisor\'s URI (kumo lab status), or qemu+ssh/qemu+tls; another socket: only root on the machine, with `kumo host add --uri`',
        };
      }
    }
  }
  return undefined;
}

const TEST_SHAPE = /^test\+unix:\/\/(\/[^?]*)\?socket=([^&]*)$/;
const TEST_EXAMPLE = 'e.g. test+unix:///var/tmp/nodes/kvm1.xml?socket=/run/libvirt/libvirt-sock';

/** The test driver through a libvirtd's unix socket: an absolute .xml file and the socket, nothing else; root's only. */
function testUriFault(uri: string, opts: LibvirtUriOptions): { problem: string; fix: string } | undefined {
  const m = TEST_SHAPE.exec(uri);
  if (!m) {
    return { problem: 'is not a test-driver URI kumo takes (test+unix:///ABSOLUTE/FILE.xml?socket=ABSOLUTE/SOCKET: through a libvirtd, one file per fake node)', fix: TEST_EXAMPLE };
  }
  const [, file = '', socket = ''] = m;
  if (!PATH_VALUE.test(file) || !file.endsWith('.xml')) return { problem: `names the node file "${file}", which is not a plain absolute path ending in .xml`, fix: TEST_EXAMPLE };
  if (!PATH_VALUE.test(socket)) return { problem: `has socket="${socket}", which is not a plain absolute path`, fix: 'give an absolute path of letters, digits, ".", "_", "-" and "/"' };
  // A file's schema (no KUMO_HOME) checks the shape only; registering it from the cloud is refused.
  if (opts.reach === 'cloud' && opts.home !== undefined) {
    return {
      problem: 'uses libvirt\'s test driver, whose node file the daemon reads on the server: only root on the machine registers such a host',
      fix: 'run `kumo host add NAME --uri URI` as root on the machine, or use qemu+ssh/qemu+tls for a real hypervisor',
    };
  }
  return undefined;
}

/** libvirtUriFault as an INVALID_INPUT error naming the URI. */
export function checkLibvirtUri(uri: string, opts: LibvirtUriOptions): void {
  const fault = libvirtUriFault(uri, opts);
  if (fault) throw uriError(uri, fault);
}

const uriError = (uri: string, f: { problem: string; fix: string }): KumoError => invalid(`the libvirt URI "${uri}" ${f.problem}`, f.fix);
