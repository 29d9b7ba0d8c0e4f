import { Command } from 'commander';
import { named } from '../names.js';
import { collect, context } from '../app.js';
import { json } from '../render.js';
import { HostService, probeThisMachine, type AddHostRequest } from '../../service/host.js';
import { MigrationService } from '../../service/migration.js';
import { table, ramText } from '../render.js';
import { KumoError } from '../../model/errors.js';
import { describeShell, type ShellSpec } from '../../model/shell.js';
import { EVACUATE_PARALLEL, parseCount } from '../../model/sizes.js';
import { haStates, hostHaView, setFence } from '../../service/ha/hosts.js';
import type { HostHa } from '../../model/ha.js';

/** The State column: what libvirt says now, and what HA made of a host that went down. */
function stateText(up: boolean, why: string | undefined, ha: HostHa['state'] | undefined): string {
  if (ha === 'fenced') return up ? 'up (FENCED)' : 'FENCED';
  if (ha === 'unfenced') return up ? 'up (UNFENCED)' : 'DOWN, UNFENCED';
  if (ha === 'down') return 'DOWN';
  return up ? 'up' : /did not finish/.test(why ?? '') ? 'NO ANSWER' : 'DOWN';
}

/** The HA story of `kumo host show`: down at, fenced at, moved what where, rejoined at. */
function printStory(fence: string, ha: HostHa & { fix?: string }): void {
  const row = (k: string, v: string) => console.log(`${k.padEnd(18)} ${v}`);
  console.log(`fence: ${fence}`); // as said: "fence: lab", "fence: command" or "fence: none"
  row('ha', { up: 'up', down: 'DOWN (missed heartbeats; being fenced)', fenced: 'DOWN, FENCED (off; its HA instances start elsewhere)',
    unfenced: 'DOWN, NOT FENCED: its instances are NOT started elsewhere (they might still run there)' }[ha.state]);
  if (ha.downAt) row('down at', ha.downAt);
  if (ha.fencedAt) row('fenced at', ha.fencedAt);
  if (ha.fenceError) row('fence failed', ha.fenceError);
  for (const m of ha.moved) row('moved', `${m.instance} -> ${m.to} at ${m.at}`);
  if (ha.rejoinedAt) row('rejoined at', `${ha.rejoinedAt} (domains of moved instances removed there, unstarted)`);
  if (ha.fix) row('fix', ha.fix);
}

function shellOption(o: { ssh?: string; sshKey?: string; netns?: string }): ShellSpec | undefined {
  if (o.ssh && o.netns) throw new KumoError('INVALID_INPUT', 'give either --ssh or --netns, not both');
  if (o.netns) return { kind: 'netns', netns: o.netns };
  if (!o.ssh) return undefined;
  const m = /^(.*?)(?::(\d+))?$/.exec(o.ssh)!;
  return { kind: 'ssh', destination: m[1]!, ...(m[2] ? { port: Number(m[2]) } : {}), ...(o.sshKey ? { identity: o.sshKey } : {}) };
}

export function hostCommand(): Command {
  const cmd = new Command('host').description('the hypervisor hosts kumo manages');
  cmd.command('info').description('acceleration, libvirt/QEMU versions, CPUs, memory and missing tools')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const i = await new HostService(await context()).info();
      if (o.json) return console.log(json(i));
      const row = (k: string, v: unknown) => console.log(`${k.padEnd(14)} ${String(v)}`);
      row('host', i.name);
      row('libvirt uri', `${i.libvirtUri} (${i.libvirtAnswers ? 'answers' : 'DOES NOT ANSWER: start libvirtd'})`);
      if (i.libvirt) row('libvirt', i.libvirt);
      if (i.hypervisor) row('hypervisor', i.hypervisor);
      if (i.antiSpoofing !== undefined) row('anti-spoofing', i.antiSpoofing ? 'yes (libvirt nwfilter clean-traffic on every NIC)' : 'NO: libvirt has no nwfilter driver');
      if (i.accel) row('acceleration', `${i.accel === 'kvm' ? 'KVM' : 'none: TCG software emulation'} — ${i.accelReason}`);
      row('cpus', i.cpus);
      row('memory', `${i.memoryMiB} MiB (${i.freeMemoryMiB} MiB free)`);
      if (i.libvirtdKvm) row('libvirtd kvm', { device: 'sees /dev/kvm', masked: '/dev/kvm masked (libvirt uses software emulation only)', absent: 'no /dev/kvm' }[i.libvirtdKvm]);
      row('missing', i.missing.length ? i.missing.map((m) => `${m.tool} (apt-get install ${m.package})`).join(', ') : 'nothing');
      for (const p of i.problems) console.log(`\nPROBLEM: ${p.problem}\n  fix: ${p.fix}`);
    });

  // For scripts (the set-up decides with it how to start libvirtd): kvm or tcg, then the reason.
  cmd.command('accel').description('whether guests get KVM here or run in software emulation (probed once per QEMU and kernel)')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const a = await probeThisMachine();
      console.log(o.json ? json(a) : `${a.accel}${a.kvmMask ? ' mask-kvm' : ''}: ${a.reason}`);
    });

  cmd.command('add').argument('<name>').description('register a hypervisor by its libvirt URI (or a storage/lb/edge node by its shell)')
    .option('--uri <uri>', 'qemu+ssh://root@kvm2/system, or qemu+unix:///system?socket=PATH (hypervisors)')
    .option('--migration-address <addr>', 'address other hypervisors send migration traffic to')
    .option('--role <role>', 'hypervisor (default), storage, lb, edge (repeatable)', collect, [] as string[])
    .option('--ssh <user@host[:port]>', 'run commands on the host over ssh (default for qemu+ssh:// URIs)')
    .option('--ssh-key <file>', 'private key for --ssh')
    .option('--netns <name>', 'the host is a network namespace of this machine (the lab)')
    .action(async (name: string, o: { uri?: string; migrationAddress?: string; role: string[]; ssh?: string; sshKey?: string; netns?: string }) => {
      const h = await new HostService(await context()).add({ name, roles: o.role as AddHostRequest['roles'],
        ...(o.uri ? { uri: o.uri } : {}), ...(o.migrationAddress ? { migrationAddress: o.migrationAddress } : {}),
        ...(shellOption(o) ? { shell: shellOption(o)! } : {}) }, 'machine'); // root on the machine: any socket or key file
      console.log(h.uri ? `host ${h.name} added (${h.cpus} CPUs, ${ramText(h.memoryMiB ?? 0)})` : `host ${h.name} added (${h.roles.join(', ')})`);
    });

  cmd.command('list').description('hosts with capacity, what kumo gave out, and whether they answer').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const ctx = await context();
      const hosts = await new HostService(ctx).list();
      if (o.json) return console.log(json(hosts.map((h) => ({ ...h, ...hostHaView(ctx, h.name) }))));
      const ha = haStates(ctx);
      console.log(table(['Name', 'State', 'Roles', 'CPUs', 'Memory', 'Allocated', 'Instances', 'URI'],
        hosts.map((h) => [h.name, stateText(h.up, h.why, ha.get(h.name)), h.roles.join(','), h.cpus, h.memoryMiB ? ramText(h.memoryMiB) : undefined,
          h.uri ? `${h.allocatedVcpus} vCPU / ${ramText(h.allocatedMiB)}` : undefined, h.uri ? h.instances : undefined, h.uri ?? describeShell(h.shell)])));
      // A host that gave no answer in time is stalled: its instances are unknown, not gone.
      for (const h of hosts.filter((x) => !x.up && x.why)) console.log(`${h.name}: ${h.why}`);
    });

  addShowAndSet(cmd);

  cmd.command('remove').addArgument(named('host', '<name>')).description('forget a host that has no instances').action(async (name: string) => {
    new HostService(await context()).remove(name);
    console.log(`host ${name} removed`);
  });

  cmd.command('evacuate').addArgument(named('host', '<name>')).description('live-migrate every instance off a host (for maintenance)')
    .option('--parallel <n>', 'migrations at once', '2')
    .option('--unsafe', 'skip libvirt\'s shared-storage check (automatic between hypervisors on this machine)')
    .option('--encrypted', 'encrypt every memory stream with QEMU\'s TLS (certificates needed on the hosts)')
    .action(async (name: string, o: { parallel: string; unsafe?: boolean; encrypted?: boolean }) => {
      const results = await new MigrationService(await context()).evacuate(name, {
        parallel: parseCount('--parallel', o.parallel, EVACUATE_PARALLEL), ...(o.unsafe ? { unsafe: true } : {}), ...(o.encrypted ? { encrypted: true } : {}),
      });
      for (const r of results) console.log(r.error ? `${r.name}: NOT moved: ${r.error}` : `${r.name} -> ${r.to} (downtime ${r.downtimeMs ?? '?'} ms)`);
      if (results.some((r) => r.error)) throw new KumoError('COMMAND_FAILED', `some instances are still on ${name}`, 'see the lines above');
    });
  return cmd;
}

/** show (with its HA story) and set (the fence). */
function addShowAndSet(cmd: Command): void {
  cmd.command('show').addArgument(named('host', '<name>')).option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }) => {
      const ctx = await context();
      const h = await new HostService(ctx).get(name);
      const ha = hostHaView(ctx, name);
      if (o.json) return console.log(json({ ...h, ...ha }));
      for (const [k, v] of Object.entries({ ...h, shell: describeShell(h.shell) })) console.log(`${k.padEnd(18)} ${Array.isArray(v) ? v.join(', ') : String(v)}`);
      printStory(ha.fence, ha.ha);
    });

  cmd.command('set').addArgument(named('host', '<name>')).description('change a host (root on the machine only: a fence command runs here as root)')
    .requiredOption('--fence <command|none>', "how the HA watcher powers the host off before its instances start elsewhere: a shell command run here with sh -c "
      + "(KUMO_FENCE_HOST=NAME, 60 s, exit 0 = off), or none (its instances are then never started elsewhere); a lab hypervisor without one is fenced by the lab")
    .action(async (name: string, o: { fence: string }) => {
      const kind = setFence(await context(), name, o.fence);
      console.log(`host ${name}: fence: ${kind}`);
    });
}
