import { type Executor, local } from './exec.js';
import { NetnsExecutor } from './netns.js';
import { SshExecutor } from './ssh.js';
import type { ShellSpec } from '../model/shell.js';

// The shell's description is a model type (the store records it, the CLI shows it): kept importable from here.
export { describeShell, type ShellSpec } from '../model/shell.js';

export function executorFor(spec: ShellSpec): Executor {
  switch (spec.kind) {
    case 'local': return local;
    case 'netns': return new NetnsExecutor(spec.netns);
    case 'ssh': return new SshExecutor(spec);
  }
}

/**
 * The shell that goes with a libvirt URI when none is given: qemu+ssh://user@host:port/system
 * (with ?keyfile=) means the same ssh login; every other transport is this machine's.
 */
export function shellForUri(uri: string): ShellSpec {
  const m = /^[a-z]+\+ssh:\/\/(?:([^@/]+)@)?([^/:?]+)(?::(\d+))?\/[^?]*(?:\?(.*))?$/.exec(uri);
  if (!m) return { kind: 'local' };
  const keyfile = new URLSearchParams(m[4] ?? '').get('keyfile') ?? undefined;
  return {
    kind: 'ssh', destination: m[1] ? `${m[1]}@${m[2]}` : m[2]!,
    ...(m[3] ? { port: Number(m[3]) } : {}), ...(keyfile ? { identity: keyfile } : {}),
  };
}
