/** How kumo reaches a host's own shell: this machine, one of its network namespaces (the lab), or ssh. */
export type ShellSpec =
  | { kind: 'local' }
  | { kind: 'netns'; netns: string }
  | { kind: 'ssh'; destination: string; port?: number; identity?: string };

/** The shell in a few words: what `kumo host list` shows. */
export function describeShell(spec: ShellSpec): string {
  switch (spec.kind) {
    case 'local': return 'local';
    case 'netns': return `netns ${spec.netns}`;
    case 'ssh': return `ssh ${spec.destination}${spec.port ? `:${spec.port}` : ''}`;
  }
}
